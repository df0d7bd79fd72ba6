import BranchyData
import BranchyModel

extension Network {
    /// Throws unless `data`'s images have the shape `[C, H, W]` this network expects,
    /// before any batch of them is shaped as the network's input.
    public func checkInput(of data: ImageDataset) throws {
        guard spec.input == data.shape else {
            throw TrainingError("the data set's images are \(data.shapeDescription), but model \(spec.name) expects \(spec.input)")
        }
    }
}
