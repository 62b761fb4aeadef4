import PGLockExporter

/// What `migrate` reads of `/proc/net/tcp{,6}` and `/proc/PID/stat` to find its child's
/// sockets: the kernel's text, but a process can name itself anything (`comm` holds spaces and
/// parentheses). Invariants: every socket read has an inode, a port in range and an address;
/// a stat's fields are read after the last `)`, so no command name can change them.
enum ProcNetTCPTarget {
    static let target = FuzzTarget(name: "proc-net-tcp") { bytes in
        let text = bytes.text
        for (inode, socket) in ProcessTreePorts.sockets(procNetTCP: text) {
            FuzzCheck.require(inode != 0, "inode 0 read")
            for endpoint in socket.local {
                FuzzCheck.require((0...65535).contains(endpoint.port) && !endpoint.address.isEmpty, "endpoint \(endpoint)")
            }
        }
        _ = ProcessTreePorts.processStat(text)
        // Any command name inside the parentheses leaves the fields after it as they are.
        let comm = String(Array(bytes.prefix(16)).text.filter { $0 != "\n" })
        let stat = "4242 (\(comm)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100"
        let parsed = ProcessTreePorts.processStat(stat)
        FuzzCheck.require(
            parsed?.pid == 4242 && parsed?.parent == 1 && parsed?.startTime == 987654, "comm \(comm.debugDescription) changed the fields: \(String(describing: parsed))")
    }
}
