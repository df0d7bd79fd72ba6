import BranchyData
import BranchyModel

extension Network {
    /// Throws unless `data`'s images are the single-channel input this network expects,
    /// before any batch of them is shaped as the network's input.
    public func checkInput(of data: IDXDataset) throws {
        guard spec.input == [1, data.rows, data.cols] else {
            throw TrainingError("the data set's images are 1×\(data.rows)×\(data.cols), but model \(spec.name) expects \(spec.input)")
        }
    }
}
