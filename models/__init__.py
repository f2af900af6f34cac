"""ckpp model zoo: the paper's generator and its ConvLSTM / Hierarchical-Prediction baselines (PyTorch).

Importing this package does not import torch; its submodules do.
"""
