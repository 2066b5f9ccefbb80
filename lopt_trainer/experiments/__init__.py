"""The paper's two extra experiments: implicit regularisation (:mod:`.implicit_reg`) and training a learned
optimizer with a learned optimizer (:mod:`.self_training`)."""
