using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Records;
using static Ckpt.Engine.Security.SecurityNative;

namespace Ckpt.Engine.Security;

/// <summary>
/// The privilege rule of a restore (docs/SECURITY.md), decided before anything exists: the image's
/// credentials must be within what the restoring user has, and, when root restores, within what
/// whoever could have written the image has. Root trusts an image fully when it says so
/// (--trust-image), when the file is root's own (owned by root, writable by nobody else), or when
/// the image carries a signature this host's key verifies. Otherwise the writer is the file's owner
/// (the file writable by nobody else), and the image may claim only that user's ids and groups and
/// no capability at all; an image nobody can name the writer of (a pipe, a file others can write)
/// may claim nothing. A refusal says which rule, what the image claims, and what would let it through.
/// </summary>
public static class RestorePrivilege
{
    public static void Check(RestorePlan plan, bool trustImage)
    {
        // Every live process of a tree claims its own credentials: each must pass.
        List<RestorePlan> processes = plan.Image.Processes.Select(plan.ForProcess).ToList();
        if (geteuid() != 0)
        {
            Ceiling own = Ceiling.OfEngine();
            foreach (RestorePlan process in processes)
                if (own.Excess(process.Credentials, process.Groups) is { } excess)
                    throw new ImageNotTrustedException($"the image claims {excess}{For(process, plan)}, more than the user restoring it (uid {getuid()}) has: a restore never gives a process more than its user has");
            return;
        }
        if (trustImage) return;
        ImageSource source = plan.Source;
        uint? writer = source.WritableByOthers ? null : source.Owner;
        if (writer == 0) return; // root's own file: only root could have written it
        string? signatureProblem = SignatureProblem(plan);
        if (signatureProblem is null) return; // written by a root engine of this host, unchanged since

        string why = $"{Describe(source, writer)} and {signatureProblem}";
        // TCP_REPAIR sets any sequence numbers on a connection to any peer: the engine's CAP_NET_ADMIN, used
        // for the process. Only for an image root trusts (docs/SECURITY.md).
        if (Files.Sockets.TcpConnectionRestore.FirstConnection(plan) is { } connection)
            throw new ImageNotTrustedException($"{why}, and it holds an established TCP connection ({connection}), which only an image root trusts may restore (TCP_REPAIR needs CAP_NET_ADMIN). " +
                "Pass --trust-image if you trust the image");
        if (writer is not { } user)
            throw new ImageNotTrustedException($"{why}: nobody can tell who wrote it, so it may not restore any credentials. " +
                "Restore it from a file only its writer can write, or pass --trust-image if you trust where it came from");
        Ceiling ceiling = Ceiling.OfUser(user);
        foreach (RestorePlan process in processes)
            if (ceiling.Excess(process.Credentials, process.Groups) is { } more)
                throw new ImageNotTrustedException($"{why}, so it restores at most as {ceiling.Name}; it claims {more}{For(process, plan)}. " +
                    "Restore it as that user, or pass --trust-image if you trust the image");
    }

    // Names the process when the image holds a tree and it is not the root.
    private static string For(RestorePlan process, RestorePlan root) => process.Pid == root.Pid ? "" : $" for process {process.Pid}";

    // Null when the image's signature is valid under this host's key; else why it does not count.
    private static string? SignatureProblem(RestorePlan plan)
    {
        if (plan.Image.Signature is null) return "the image is not signed";
        ImageSigningKey? key = ImageKeyFile.ForRestore();
        if (key is null) return $"this host has no image key ({ImageKeyFile.Path}) to verify its signature with";
        return key.Verify(plan.ImageFile, plan.Image);
    }

    private static string Describe(ImageSource source, uint? writer) =>
        source.Owner is not { } owner ? $"{source.Name} is not a regular file"
        : writer is null ? $"{source.Name} (owner uid {owner}, mode {Convert.ToString(source.Mode & 0xfff, 8)}) can be written by users other than its owner"
        : $"{source.Name} is owned by uid {owner}";

    /// <summary>What a user has: the ids a process of theirs can hold, and its capabilities (none for a user, none checked for root).</summary>
    private sealed record Ceiling(string Name, uint[] Uids, uint[] Gids)
    {
        public static Ceiling OfUser(uint uid)
        {
            if (User(uid) is not { } user) return new Ceiling($"uid {uid} (not in the user database: no groups)", [uid], []);
            return new Ceiling($"uid {uid} ({user.Name})", [uid], [user.Gid, .. user.Groups]);
        }

        public static Ceiling OfEngine() =>
            new($"uid {getuid()}", [getuid(), geteuid()], [getgid(), getegid(), .. SecurityNative.Groups()]);

        /// <summary>What the credentials hold beyond this ceiling, in words; null when nothing.</summary>
        public string? Excess(CredentialsRecord c, uint[] groups)
        {
            var excess = new List<string>();
            uint[] uids = [c.Uid, c.Euid, c.Suid, c.Fsuid];
            if (uids.Any(u => !Uids.Contains(u))) excess.Add($"uids {string.Join('/', uids)} (real/effective/saved/fs)");
            uint[] gids = [c.Gid, c.Egid, c.Sgid, c.Fsgid];
            if (gids.Any(g => !Gids.Contains(g))) excess.Add($"gids {string.Join('/', gids)} (real/effective/saved/fs)");
            uint[] foreign = groups.Where(g => !Gids.Contains(g)).ToArray();
            if (foreign.Length > 0) excess.Add($"supplementary group{(foreign.Length > 1 ? "s" : "")} {string.Join(", ", foreign)}");
            if ((c.CapPermitted | c.CapEffective | c.CapInheritable | c.CapAmbient) != 0)
                excess.Add($"capabilities (permitted 0x{c.CapPermitted:x}, effective 0x{c.CapEffective:x}, inheritable 0x{c.CapInheritable:x}, ambient 0x{c.CapAmbient:x})");
            return excess.Count == 0 ? null : string.Join(", ", excess);
        }
    }
}

/// <summary>The image claims more privilege than the restore may give (exit code 4); nothing was created.</summary>
public sealed class ImageNotTrustedException(string message) : Exception(message);
