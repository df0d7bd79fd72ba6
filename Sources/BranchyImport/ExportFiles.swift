import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing the exported files: each to a temporary file beside it, then renamed into place, so
/// that no reader ever sees half a file; all or none.
enum ExportFiles {
    /// Writes each file in order; on a failure removes those already written and throws an
    /// ``ExportFileError``. Returns the files written.
    static func write(_ files: [(url: URL, data: Data)]) throws -> [URL] {
        var written: [URL] = []
        do {
            for f in files {
                try write(f.data, to: f.url)
                written.append(f.url)
            }
        } catch {
            for url in written { try? FileManager.default.removeItem(at: url) }
            throw error
        }
        return written
    }

    /// Writes `data` to `.NAME.RANDOM.tmp` beside `url` (mode 0644 less the umask), then renames it to `url`.
    static func write(_ data: Data, to url: URL) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp").path
        func fail(_ what: String) -> ExportFileError {
            ExportFileError(file: url.path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create a temporary file beside it") }
        var error: ExportFileError?
        if !writeAll(fd, data) { error = fail("cannot write the temporary file") }
        if close(fd) != 0, error == nil { error = fail("cannot close the temporary file") }
        if error == nil, rename(temp, url.path) != 0 { error = fail("cannot rename the temporary file into place") }
        guard let error else { return }
        unlink(temp)
        throw error
    }
}

/// Writes all of `data` to `fd`, retrying interrupted and partial writes; false on an error (errno set).
private func writeAll(_ fd: Int32, _ data: Data) -> Bool {
    data.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}
