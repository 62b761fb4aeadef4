import PGLockExporter

/// A guard setting as `pg_db_role_setting` holds it (`30s`, `5min`, `100`): text any role with
/// `ALTER ROLE ... SET` privileges can write. The seconds it reads are finite and never
/// negative (nor -0): the metric and the guard alert compare them with 0.
enum GuardSettingTarget {
    static let target = FuzzTarget(name: "guard-setting") { bytes in
        let text = bytes.text
        if let seconds = GuardSettings.seconds(fromSetting: text) {
            FuzzCheck.require(seconds.isFinite && seconds >= 0 && seconds.sign == .plus, "\(text.debugDescription) read as \(seconds)")
        }
    }
}
