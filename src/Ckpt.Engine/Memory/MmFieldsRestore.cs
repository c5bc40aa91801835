using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Sets the mm fields (code/data/brk/stack/args/env bounds) and the saved auxv with
/// PR_SET_MM_MAP, injected. The exe link is left as it is: the task executed the image's exe.
/// </summary>
public static unsafe class MmFieldsRestore
{
    private const ulong PR_SET_MM = 35, PR_SET_MM_MAP = 14;

    [StructLayout(LayoutKind.Sequential)]
    private struct PrctlMmMap
    {
        public ulong StartCode, EndCode, StartData, EndData, StartBrk, Brk, StartStack, ArgStart, ArgEnd, EnvStart, EnvEnd;
        public ulong Auxv;
        public uint AuxvSize;
        public uint ExeFd;
    }

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        MmRecord mm = plan.Mm;
        if (mm.AuxvWords > MmRecord.AuxvCapacity)
            throw new RestoreRefusedException($"MM record claims {mm.AuxvWords} auxv words, at most {MmRecord.AuxvCapacity} fit");
        var auxv = new ulong[mm.AuxvWords];
        for (int i = 0; i < auxv.Length; i++) auxv[i] = mm.SavedAuxv[i];
        ulong auxvAddress = scratch.Put(MemoryMarshal.AsBytes(auxv.AsSpan()));
        var map = new PrctlMmMap
        {
            StartCode = mm.StartCode, EndCode = mm.EndCode, StartData = mm.StartData, EndData = mm.EndData,
            StartBrk = mm.StartBrk, Brk = mm.Brk, StartStack = mm.StartStack,
            ArgStart = mm.ArgStart, ArgEnd = mm.ArgEnd, EnvStart = mm.EnvStart, EnvEnd = mm.EnvEnd,
            Auxv = auxvAddress, AuxvSize = (uint)(auxv.Length * 8), ExeFd = uint.MaxValue,
        };
        ulong mapAddress = scratch.PutStruct(map);
        syscalls.Call("prctl(PR_SET_MM, PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, mapAddress, (ulong)sizeof(PrctlMmMap), 0);
    }
}
