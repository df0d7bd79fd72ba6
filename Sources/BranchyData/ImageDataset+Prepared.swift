import Foundation

extension ImageDataset {
    /// Loads a data set as ``load(path:)`` does and prepares it as the input of a model taking
    /// `input` (`[C, H, W]`) under `preprocessing` (``Preprocessing/standard`` when `nil`).
    /// An image folder is resized and cropped while it is decoded, so its images may differ in size.
    public static func load(path: String, for input: [Int], preprocessing: Preprocessing?) throws -> ImageDataset {
        let p = preprocessing ?? .standard
        var isDirectory: ObjCBool = false
        if p.resamples, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return try load(directory: URL(fileURLWithPath: path), split: .test, for: input, preprocessing: p)
        }
        return try p.prepare(try load(path: path), input: input, source: path)
    }

    /// Loads one split of a data set directory as ``load(directory:split:)`` does and prepares it
    /// as the input of a model taking `input` under `preprocessing` (``Preprocessing/standard`` when `nil`).
    public static func load(directory: URL, split: Split, for input: [Int], preprocessing: Preprocessing?) throws -> ImageDataset {
        let p = preprocessing ?? .standard
        if p.resamples, try DatasetFormat.detect(directory: directory) == .imageFolder {
            let folder = ImageFolder.splitFolder(directory, split)
            return try p.prepare(try ImageFolder.load(folder, geometry: p), input: input, source: folder.path, resampled: true)
        }
        return try p.prepare(try load(directory: directory, split: split), input: input, source: directory.path)
    }
}
