import CBranchyImages
import Foundation

/// An image folder in the usual layout: one subfolder per class, named as the classes are (class
/// 0 is the first name in sorted order, as torchvision's `ImageFolder` numbers them), each
/// holding PNG and JPEG files (`.png`, `.jpg`, `.jpeg`, any case; other files are skipped), read
/// in name order. A folder with `train` and `test` subfolders in that layout holds both splits.
/// Images are decoded by libpng and libjpeg-turbo (loaded at run time: Debian's `libpng16-16`
/// and `libturbojpeg0`), greyscale when every image is, else RGB, and must all have one size.
public enum ImageFolder {
    static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// Whether `directory` is an image folder: a subfolder holding at least one image.
    static func holdsImages(_ directory: URL) -> Bool {
        (try? classFolders(directory))?.contains { !(imageFiles(in: $0).isEmpty) } ?? false
    }

    /// The folder of `split`: DIR/train or DIR/test when present, else DIR itself.
    static func splitFolder(_ directory: URL, _ split: ImageDataset.Split) -> URL {
        let sub = directory.appendingPathComponent(split == .train ? "train" : "test")
        return holdsImages(sub) ? sub : directory
    }

    static func classFolders(_ directory: URL) throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted()
        return names.map { directory.appendingPathComponent($0) }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0.path, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    static func imageFiles(in folder: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && extensions.contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            .map { folder.appendingPathComponent($0) }
    }

    /// Why an image folder cannot be read: the file (or folder) and the reason.
    public struct Error: Swift.Error, CustomStringConvertible {
        public var file: String
        public var reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// Loads every image of `directory`'s classes. With a `geometry` that resizes or crops
    /// (``Preprocessing/resamples``), each image is resized and cropped as it is decoded, so
    /// images may differ in size as long as they all end the same size; otherwise all must have one size.
    public static func load(_ directory: URL, geometry: Preprocessing? = nil) throws -> ImageDataset {
        let classes = try classFolders(directory).filter { !imageFiles(in: $0).isEmpty }
        guard !classes.isEmpty else { throw Error(file: directory.path, reason: "no subfolder holds PNG or JPEG images") }
        guard classes.count <= 256 else { throw Error(file: directory.path, reason: "\(classes.count) classes, more than 256") }
        var files: [(url: URL, label: UInt8, data: Data, kind: Int32)] = []
        for (label, folder) in classes.enumerated() {
            for url in imageFiles(in: folder) {
                guard let data = FileManager.default.contents(atPath: url.path) else { throw Error(file: url.path, reason: "cannot read the file") }
                let kind = url.pathExtension.lowercased() == "png" ? Int32(BI_PNG) : Int32(BI_JPEG)
                files.append((url, UInt8(label), data, kind))
            }
        }
        let resampling = geometry.map(\.resamples) ?? false
        // The size and colour of every image first, so that nothing is decoded for a set that does not fit.
        var sizes: [(width: Int, height: Int)] = []
        var size: (width: Int, height: Int, from: String)? = nil
        var allGrey = true
        for f in files {
            let (w, h, grey) = try header(f.data, kind: f.kind, file: f.url.path)
            sizes.append((w, h))
            var (ow, oh) = (w, h)
            if resampling, let g = geometry {
                do { (oh, ow) = try g.outputSize(rows: h, cols: w) } catch let e as PreprocessingError {
                    throw Error(file: f.url.path, reason: "is \(w)×\(h): \(e.reason)")
                }
            }
            if let s = size, s.width != ow || s.height != oh {
                throw Error(file: f.url.path, reason: resampling
                    ? "is \(ow)×\(oh) after resizing and cropping but \(s.from) is \(s.width)×\(s.height): record a crop, or a resize to H×W, so that every image ends one size"
                    : "is \(w)×\(h) but \(s.from) is \(s.width)×\(s.height): every image must have one size (resize them first, or record a resize at import)")
            }
            size = size ?? (ow, oh, f.url.path)
            allGrey = allGrey && grey
        }
        let (width, height) = (size!.width, size!.height)
        let channels = allGrey ? 1 : 3
        let per = width * height * channels
        guard files.count * per <= ImageDataset.maxPayloadBytes else {
            throw Error(file: directory.path, reason: "\(files.count) images of \(per) bytes, more than the limit of \(ImageDataset.maxPayloadBytes)")
        }
        var images = [Float](repeating: 0, count: files.count * per)
        for (i, f) in files.enumerated() {
            let (w, h) = sizes[i]
            var pixels = [UInt8](repeating: 0, count: w * h * channels)
            var message = [CChar](repeating: 0, count: 200)
            let rc = f.data.withUnsafeBytes { raw in
                bi_decode(f.kind, raw.baseAddress, raw.count, Int32(channels), &pixels, pixels.count, &message, message.count)
            }
            guard rc == 0 else { throw failure(rc, kind: f.kind, file: f.url.path, message: message) }
            let plane = w * h
            var decoded = [Float](repeating: 0, count: pixels.count)
            for p in 0..<plane { for c in 0..<channels { decoded[c * plane + p] = Float(pixels[p * channels + c]) / 255 } }
            if resampling, let g = geometry { decoded = try g.resample(decoded[...], channels: channels, rows: h, cols: w).pixels }
            images.replaceSubrange(i * per ..< (i + 1) * per, with: decoded)
        }
        return ImageDataset(images: images, labels: files.map(\.label), channels: channels, rows: height, cols: width)
    }

    private static func header(_ data: Data, kind: Int32, file: String) throws -> (Int, Int, Bool) {
        var w: Int32 = 0, h: Int32 = 0, grey: Int32 = 0
        var message = [CChar](repeating: 0, count: 200)
        let rc = data.withUnsafeBytes { raw in bi_header(kind, raw.baseAddress, raw.count, &w, &h, &grey, &message, message.count) }
        guard rc == 0 else { throw failure(rc, kind: kind, file: file, message: message) }
        guard w > 0, h > 0, Int(w) * Int(h) <= 1 << 26 else { throw Error(file: file, reason: "image size \(w)×\(h) is out of range") }
        return (Int(w), Int(h), grey != 0)
    }

    private static func failure(_ rc: Int32, kind: Int32, file: String, message: [CChar]) -> Error {
        let library = String(cString: bi_library_name(kind))
        if rc == -1 {
            return Error(file: file, reason: "\(library) is not installed (Debian: apt-get install \(kind == Int32(BI_PNG) ? "libpng16-16" : "libturbojpeg0"))")
        }
        let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return Error(file: file, reason: "not a valid \(kind == Int32(BI_PNG) ? "PNG" : "JPEG") image (\(library): \(text))")
    }
}
