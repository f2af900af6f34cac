"""The paper's baselines (§4), ConvLSTM and Hierarchical Prediction, as model families of the shared
training loop: `models.baselines.convlstm:ConvLSTMFamily`, `models.baselines.hierarchical:HPFamily`
(registered in models.registry). Both make a fixed 10 frames from the first, one model per expression;
see docs/baselines.md. Importing this package does not import torch.
"""
