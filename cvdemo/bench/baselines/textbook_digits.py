"""The textbook script the classroom benchmark compares against: sklearn digits, LeNet, Adam 1e-3, batch 64.

Run as `python textbook_digits.py` (device from $CVDEMO_BENCH_DEVICE, default cpu); the last line of
stdout is the test accuracy.
"""

import os

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def main() -> None:
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16
    y = torch.tensor(d.target)
    x = F.interpolate(x, size=32, mode="bilinear")
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    dev = torch.device(os.environ.get("CVDEMO_BENCH_DEVICE", "cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84),
                          nn.Tanh(), nn.Linear(84, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _epoch in range(26):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(xtr[idx].to(dev)), ytr[idx].to(dev)).backward()
            opt.step()
    with torch.no_grad():
        print((model(xte.to(dev)).argmax(1).cpu() == yte).float().mean().item())


if __name__ == "__main__":
    main()
