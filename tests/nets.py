"""Small networks the explanation tests share."""

from torch import nn


class SmallCNN(nn.Module):
    """Conv-ReLU features, global average pooling, a linear head: the shape CAM needs, and plain ReLUs,
    so every Captum and pytorch-grad-cam method applies to it unchanged."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))
