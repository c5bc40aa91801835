using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Descriptor tables (CLONE_FILES) and fs information (CLONE_FS: cwd, root, umask) shared by processes of
/// a tree that do not share memory (issue 10): tests/workloads/ckpt_shared_tables.c. The image holds each
/// shared object once; after `checkpoint --kill` + restore kcmp(2) says the same processes share the same
/// objects again (and the others do not), and the workload checks the behaviour: a descriptor opened or
/// closed by one is seen by the other, a chdir or umask by one is seen by the other. The engine runs as
/// the real `ckpt`.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed partial class SharedTablesTests
{
    private const int SIGKILL = 9, SYS_kcmp = 312, KCMP_FILES = 2, KCMP_FS = 3;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int pid1, int pid2, int type, ulong index1, ulong index2);

    private static bool Shared(int a, int b, int type)
    {
        long order = Syscall(SYS_kcmp, a, b, type, 0, 0);
        Assert.True(order >= 0, $"kcmp({a}, {b}, {type}) failed: errno {Marshal.GetLastPInvokeError()}");
        return order == 0;
    }

    /// <summary>The workload's processes by role, from its PIDS and SIBLINGS lines.</summary>
    private sealed record Roles(int Root, int Files, int Fs, int Both, int Middle, int Sib1, int Sib2)
    {
        public int[] All => [Root, Files, Fs, Both, Middle, Sib1, Sib2];

        public static Roles Of(Target target)
        {
            string[] lines = File.ReadAllLines(target.Log);
            int[] pids = lines.Single(l => l.StartsWith("PIDS ", StringComparison.Ordinal)).Split(' ').Skip(1).Select(int.Parse).ToArray();
            int[] siblings = lines.Single(l => l.StartsWith("SIBLINGS ", StringComparison.Ordinal)).Split(' ').Skip(1).Select(int.Parse).ToArray();
            return new Roles(pids[0], pids[1], pids[2], pids[3], pids[4], siblings[0], siblings[1]);
        }

        /// <summary>Which pairs share what: exactly the ones the workload made, nothing else.</summary>
        public void RequireSharing()
        {
            foreach (int a in All)
            {
                foreach (int b in All.Where(b => b > a))
                {
                    Assert.True(SharesTable(a, b) == Shared(a, b, KCMP_FILES), $"processes {a} and {b}: descriptor table shared = {Shared(a, b, KCMP_FILES)}");
                    Assert.True(SharesFs(a, b) == Shared(a, b, KCMP_FS), $"processes {a} and {b}: fs information shared = {Shared(a, b, KCMP_FS)}");
                }
            }
        }

        private bool SharesTable(int a, int b) => InGroup(a, b, [Root, Files, Both]) || InGroup(a, b, [Sib1, Sib2]);

        private bool SharesFs(int a, int b) => InGroup(a, b, [Root, Fs, Both]) || InGroup(a, b, [Sib1, Sib2]);

        private static bool InGroup(int a, int b, int[] group) => group.Contains(a) && group.Contains(b);
    }

    // Kills what is left of the workload, every process of its session (the harness gives the root one; a
    // restore brings it back), and removes its directory (DIR in ckpt_shared_tables.c).
    private static void KillAll(int root)
    {
        foreach (string entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out int pid)) continue;
            try
            {
                string stat = File.ReadAllText($"{entry}/stat");
                if (stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[3] == root.ToString()) RestoreTestProcesses.TryKill(pid, SIGKILL);
            }
            catch (IOException) { } // gone meanwhile
        }
        string directory = $"/tmp/ckpt-shared-tables-{root}";
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void Processes_sharing_a_descriptor_table_or_fs_information_share_them_again_after_kill_and_restore()
    {
        using var target = Start("ckpt_shared_tables");
        try
        {
            Roles roles = Roles.Of(target);
            List<string> before = ProcessTreeTests.Tree(target.Pid);
            Assert.Equal(7, before.Count);
            roles.RequireSharing();
            string image = TempPath("shared-tables.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in roles.All) RestoreTestProcesses.WaitUntilGone(pid);

            // The image: one FILE_TABLE per table and one FS object per shared fs, used by the sharers only.
            ImageModel model = ReadImage(image).Image!;
            ProcessImage Of(int pid) => model.Processes.Single(p => p.Pid == pid);
            Assert.Equal(4, model.Processes.Select(p => p.FileTable).Distinct().Count()); // R's (files, both), fs's, middle's, the siblings'
            Assert.Same(Of(roles.Root).FileTable, Of(roles.Files).FileTable);
            Assert.Same(Of(roles.Root).FileTable, Of(roles.Both).FileTable);
            Assert.NotSame(Of(roles.Root).FileTable, Of(roles.Fs).FileTable);
            Assert.Same(Of(roles.Sib1).FileTable, Of(roles.Sib2).FileTable);
            Assert.NotSame(Of(roles.Middle).FileTable, Of(roles.Sib1).FileTable);
            FsImage rootFs = Of(roles.Root).SharedFs!;
            Assert.Equal(roles.Root, rootFs.DefinedBy);
            Assert.Same(rootFs, Of(roles.Fs).SharedFs);
            Assert.Same(rootFs, Of(roles.Both).SharedFs);
            Assert.Null(Of(roles.Files).SharedFs);
            Assert.Null(Of(roles.Middle).SharedFs);
            Assert.Same(Of(roles.Sib1).SharedFs, Of(roles.Sib2).SharedFs);
            Assert.Equal(0x17u, rootFs.Record.Umask); // 027
            var (showCode, show, _) = RunCkpt(EngineTimeout, "show", image);
            Assert.Equal(0, showCode);
            Assert.Contains($" descriptors, shared with processes {roles.Files}, {roles.Both} (descriptor table objref {Of(roles.Root).FileTable.ObjRef}, CLONE_FILES)", show);
            Assert.Contains($"umask 027, shared with processes {roles.Root}, {roles.Fs} (fs objref {rootFs.ObjRef}, CLONE_FS)", show);

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            roles.RequireSharing();
            target.RequirePass(seconds: 60); // each pair sees the other's opens, closes, chdirs and umasks
        }
        finally
        {
            KillAll(target.Pid);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_sharing_tree_running_as_before()
    {
        using var target = Start("ckpt_shared_tables");
        try
        {
            Roles roles = Roles.Of(target);
            List<string> before = ProcessTreeTests.Tree(target.Pid);
            CkptCheckpoint(target.Pid, TempPath("shared-tables-live.img"), kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            roles.RequireSharing();
            foreach (int pid in roles.All) Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{pid}/status"));
            target.RequirePass(seconds: 60);
        }
        finally
        {
            KillAll(target.Pid);
        }
    }

    [Fact]
    public void Sharing_with_a_process_outside_the_checkpointed_tree_is_refused_naming_both_and_all_run_on()
    {
        using var target = Start("ckpt_shared_tables");
        try
        {
            Roles roles = Roles.Of(target);
            List<string> before = ProcessTreeTests.Tree(target.Pid);
            foreach (var (pid, partner, what) in new[] { (roles.Files, roles.Root, "descriptor table (CLONE_FILES"), (roles.Fs, roles.Root, "fs information (CLONE_FS"), (roles.Sib2, roles.Sib1, "descriptor table (CLONE_FILES") })
            {
                var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", pid.ToString(), "--output", TempPath("shared-outside.img"));
                Assert.Equal(6, code);
                Assert.Contains($"process {pid} shares its {what}", stderr);
                Assert.Contains($"with process {partner}, outside the checkpointed tree", stderr);
            }
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            foreach (int pid in roles.All) Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{pid}/status"));
            roles.RequireSharing();
            target.RequirePass(seconds: 60);
        }
        finally
        {
            KillAll(target.Pid);
        }
    }

    [Fact]
    public void A_sharer_whose_parent_left_the_table_is_refused_by_name_and_the_tree_runs_on()
    {
        using var target = Start("ckpt_shared_tables", "unshared");
        try
        {
            string[] lines = File.ReadAllLines(target.Log); // A and B are printed before READY
            int a = int.Parse(lines.Single(l => l.StartsWith("A ", StringComparison.Ordinal))[2..]);
            int b = int.Parse(lines.Single(l => l.StartsWith("B ", StringComparison.Ordinal))[2..]);
            Assert.True(Shared(target.Pid, b, KCMP_FILES));
            Assert.False(Shared(a, b, KCMP_FILES));
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("shared-unshared.img"));
            Assert.Equal(6, code);
            Assert.Contains($"process {b} shares its descriptor table (CLONE_FILES) with process {target.Pid}, but neither its parent {a} nor an earlier sibling shares it", stderr);
            foreach (int pid in new[] { target.Pid, a, b }) Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{pid}/status"));
            target.RequirePass(seconds: 30);
        }
        finally
        {
            KillAll(target.Pid);
        }
    }
}
