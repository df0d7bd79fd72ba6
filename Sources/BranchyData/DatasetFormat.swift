import Foundation

/// The on-disk formats a data set directory may hold.
public enum DatasetFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    /// MNIST-style IDX files (`train-images-idx3-ubyte[.gz]` …): greyscale images.
    case idx
    /// CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`): 3×32×32 colour images.
    case cifar10
    /// A folder of PNG and JPEG images, one subfolder per class (``ImageFolder``).
    case imageFolder

    public var description: String {
        switch self { case .idx: return "IDX"; case .cifar10: return "CIFAR-10 binary"; case .imageFolder: return "image folder" }
    }

    /// The format of the data set in `directory`, by the names of the files it holds (either split's).
    ///
    /// Throws ``DatasetError`` when the directory holds files of neither format, or of both.
    public static func detect(directory: URL) throws -> DatasetFormat {
        func holds(_ names: [String]) -> Bool {
            names.contains { FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path) }
        }
        let idx = holds(ImageDataset.Split.allCases.flatMap(ImageDataset.idxFileNames))
        let cifar = holds(CIFAR10.trainingFiles + [CIFAR10.testFile])
        switch (idx, cifar) {
        case (true, false): return .idx
        case (false, true): return .cifar10
        case (true, true): throw DatasetError.mixedFormats(directory: directory.path)
        case (false, false):
            if ImageFolder.holdsImages(directory) || ImageFolder.holdsImages(directory.appendingPathComponent("train"))
                || ImageFolder.holdsImages(directory.appendingPathComponent("test")) { return .imageFolder }
            var isDirectory: ObjCBool = false
            let nested = directory.appendingPathComponent("cifar-10-batches-bin")
            let hint = FileManager.default.fileExists(atPath: nested.path, isDirectory: &isDirectory) && isDirectory.boolValue
            throw DatasetError.unknownFormat(directory: directory.path, nested: hint ? nested.path : nil)
        }
    }
}

/// A data set directory whose format cannot be told from its file names.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The directory holds files of neither format; `nested` is a `cifar-10-batches-bin`
    /// directory inside it, when there is one.
    case unknownFormat(directory: String, nested: String?)
    /// The directory holds files of both formats.
    case mixedFormats(directory: String)

    public var description: String {
        switch self {
        case .unknownFormat(let directory, let nested):
            let text = "\(directory): no data set found: neither IDX files (train- or t10k-images-idx3-ubyte and "
                + "-labels-idx1-ubyte, optionally .gz), CIFAR-10 binary batches (data_batch_1.bin … data_batch_5.bin, test_batch.bin) "
                + "nor an image folder (one subfolder per class of PNG or JPEG files)"
            return nested.map { text + "; give the directory \($0) instead" } ?? text
        case .mixedFormats(let directory):
            return "\(directory): holds both IDX files and CIFAR-10 binary batches; give each data set a directory of its own"
        }
    }
}

extension ImageDataset {
    /// Loads one split from a directory, IDX or CIFAR-10 binary as ``DatasetFormat/detect(directory:)`` tells.
    public static func load(directory: URL, split: Split) throws -> ImageDataset {
        switch try DatasetFormat.detect(directory: directory) {
        case .idx: return try loadIDX(directory: directory, split: split)
        case .cifar10: return try loadCIFAR10(directory: directory, split: split)
        case .imageFolder: return try ImageFolder.load(ImageFolder.splitFolder(directory, split))
        }
    }

    /// Loads from a path that is a directory (its test split is read, in either format), a
    /// CIFAR-10 batch (a name ending in `.bin`), NumPy arrays (`FILE.npz`, arrays `x` and `y`,
    /// or `FILE.npz:IMAGES,LABELS`; or `IMAGES.npy,LABELS.npy`; see ``fromArrays(x:y:file:)``),
    /// or an IDX images file, whose labels file is found by replacing `images-idx3` with
    /// `labels-idx1` in its name.
    public static func load(path: String) throws -> ImageDataset {
        if path.hasSuffix(".npz") || path.contains(".npz:") { return try loadNPZ(path) }
        if path.hasSuffix(".npy") {
            guard path.contains(",") else {
                throw NPYArray.Error(file: path, reason: "a .npy file holds images or labels, not both: give IMAGES.npy,LABELS.npy")
            }
            return try loadNPYPair(path)
        }
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if exists && isDirectory.boolValue { return try load(directory: url, split: .test) }
        if url.pathExtension == "bin" { return try loadCIFAR10(files: [url]) }
        guard exists else { throw IDXError.fileMissing(file: path) }
        return try loadIDX(imagesFile: url)
    }
}
