"""cvdemo: an interactive playground for image classification with PyTorch.

The core package. Importing it is cheap: torch, torchvision and scikit-learn are
imported by the modules that need them, not here, so `cvdemo --help` starts fast.
"""

__version__ = "0.1.0"
