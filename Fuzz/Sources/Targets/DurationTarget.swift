import PGLockExporter

/// `DurationText`: every flag and config value that is a length of time.
enum DurationTarget {
    static let target = FuzzTarget(name: "duration") { bytes in
        let text = bytes.text
        do {
            let seconds = try DurationText.seconds(text)
            FuzzCheck.require(seconds.isFinite && seconds >= 0, "\(text.debugDescription) parsed to \(seconds)")
            _ = DurationText.format(seconds)
        } catch {
            FuzzCheck.oneLine(String(describing: error), "duration")
        }
    }
}
