extension EpisodeRecord {
    /// The episode's stable id: 16 lowercase hex digits, the 64-bit FNV-1a hash of
    /// `v1 NUL target NUL root NUL started_at`, where `root` is `gid:GID` for a prepared
    /// transaction and `pid:PID:BACKEND_START` (microseconds since the epoch, or empty when
    /// unknown) for a backend, and `started_at` is in microseconds since the epoch.
    ///
    /// Why this shape: the same root in the same target seen again at the next sample gives the
    /// same id, so `EpisodeStore.upsert` updates one row while the episode goes on and when it
    /// ends; a later episode of the same root starts later and gets another id; a reused pid has
    /// another `backend_start`. The sampler computes it once, when it first sees the episode, and
    /// keeps it (a waiter found later with an earlier `waitstart` must not rename the episode).
    /// The hash is no secret and no defence against chosen input: its inputs are the operator's
    /// target names and the server's pids and times. URL-safe as it is
    /// (`/api/v1/episodes/{id}`). A 64-bit hash makes a collision among a million stored
    /// episodes about a 1-in-37-million chance.
    public static func id(target: String, root: Root, startedAt: Timestamp) -> String {
        let identity: String
        if let gid = root.gid {
            identity = "gid:" + gid
        } else {
            identity = "pid:\(root.pid.map(String.init) ?? ""):\(root.backendStart.map { String($0.microsecondsSinceEpoch) } ?? "")"
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64 offset basis
        for part in ["v1", target, identity, String(startedAt.microsecondsSinceEpoch)] {
            for byte in part.utf8 + [0] {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3  // FNV-1a 64 prime
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
