"""Accuracy of real models on the crossbar path: STS-B, SST-2 and WikiText-2 from ../shared/data."""
