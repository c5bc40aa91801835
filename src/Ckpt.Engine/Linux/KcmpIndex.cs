namespace Ckpt.Engine.Linux;

/// <summary>
/// Processes grouped by their kernel object of one kcmp type (address space, descriptor table, fs
/// information, signal handlers), found with about log2(groups) kcmp calls per lookup instead of one per
/// group. kcmp orders the objects it compares (1: the first sorts before the second, 2: after; an
/// obfuscated pointer order, the same for every call of one type), so the groups are kept sorted by their
/// object and searched by halves: a tree of a hundred processes, each with its own tables, is grouped with
/// about 700 calls per type instead of 5,000, and a process outside it is looked up with 7 instead of 100.
/// A call that fails or gives no order falls back to comparing with every group through
/// <c>same</c>, which decides what a failure means (an error for the tree, "not shared" for a process
/// the engine may not inspect), exactly as a plain scan would.
/// </summary>
public sealed class KcmpIndex(int kcmpType, Func<int, int, bool> same)
{
    private readonly List<List<int>> _groups = []; // sorted by their object while _ordered
    private bool _ordered = true;

    /// <summary>The groups, each in the order its members were added.</summary>
    public IReadOnlyList<IReadOnlyList<int>> Groups => _groups;

    /// <summary>The members that share pid's object (pid among them once added), or null.</summary>
    public IReadOnlyList<int>? Find(int pid) => Find(pid, out _);

    /// <summary>Adds pid to the group of its object (a new one if none); returns that group's first member.</summary>
    public int Add(int pid)
    {
        if (Find(pid, out int insertAt) is { } group)
        {
            group.Add(pid);
            return group[0];
        }
        if (insertAt >= 0) _groups.Insert(insertAt, [pid]);
        else
        {
            // Its place is unknown (a comparison without order): the groups are scanned from now on.
            _groups.Add([pid]);
            _ordered = false;
        }
        return pid;
    }

    // insertAt: where a new group for pid keeps the order; -1 once the order is unknown.
    private List<int>? Find(int pid, out int insertAt)
    {
        int low = 0, high = _groups.Count - 1;
        while (_ordered && low <= high)
        {
            int middle = (low + high) / 2;
            switch (Native.kcmp(_groups[middle][0], pid, kcmpType, 0, 0))
            {
                case 0: insertAt = middle; return _groups[middle];
                case 1: low = middle + 1; break; // the group's object sorts before pid's
                case 2: high = middle - 1; break;
                default: return Scan(pid, out insertAt); // failed, or no order: judged by `same`
            }
        }
        if (!_ordered) return Scan(pid, out insertAt);
        insertAt = low;
        return null;
    }

    private List<int>? Scan(int pid, out int insertAt)
    {
        insertAt = -1;
        return _groups.FirstOrDefault(group => same(group[0], pid));
    }
}
