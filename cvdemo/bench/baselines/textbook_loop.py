"""The textbook loops: ImageFolder + DataLoader + SGD for training, torch.inference_mode() for inference."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def image_folder(root: Path, mean: Any, std: Any) -> Any:
    """torchvision's ImageFolder over `root`, each image ToTensor + Normalize(mean, std)."""
    import torchvision
    from torchvision import transforms

    return torchvision.datasets.ImageFolder(
        str(root), transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]))


def train_epoch(model: nn.Module, loader: Any, device: torch.device, optimizer: Any) -> int:
    """One epoch of the textbook training loop; returns images seen."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    seen = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen


def train(model: nn.Module, dataset: Any, device: torch.device, *, epochs: int, batch_size: int,
          lr: float = 0.01) -> None:
    """SGD with momentum 0.9 over a shuffling DataLoader (2 workers at most) for `epochs` epochs."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=min(2, os.cpu_count() or 1),
                                         pin_memory=device.type == "cuda")
    for _ in range(epochs):
        train_epoch(model, loader, device, optimizer)


def inference(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> None:
    """Accuracy of uint8 (B, 3, H, W) batches normalised with mean = std = 0.5, under inference_mode."""
    with torch.inference_mode():
        for x, y in batches:
            x = (x.to(device).float() / 255 - 0.5) / 0.5
            (model(x).argmax(1) == y.to(device)).sum().item()
