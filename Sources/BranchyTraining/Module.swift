// BranchyTraining
