"""The shape of PyTorch's classic MNIST example: a small CNN, Adadelta with StepLR, nll_loss on
log_softmax, a DataLoader with a sampler, and a test loop that counts correct predictions."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.fc1 = nn.Linear(8 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def train(model, loader, optimizer):
    model.train()
    losses = []
    for data, target in loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test(model, loader):
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return test_loss / len(loader.dataset), correct


def main():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96)
    images = rng.standard_normal((96, 1, 8, 8)).astype(np.float32) * 0.5
    images[np.arange(96), 0, labels * 2, :] += 2.0  # the class is a bright row
    dataset = TensorDataset(torch.tensor(images), torch.tensor(labels))
    train_loader = DataLoader(dataset, batch_sampler=BatchSampler(
        SequentialSampler(range(64)), batch_size=16, drop_last=False))
    test_loader = DataLoader(torch.utils.data.Subset(dataset, range(64, 96)), batch_size=32)
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.3, dtype=torch.float32))
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses, tests = [], []
    for epoch in range(1, 4):
        losses += train(model, train_loader, optimizer)
        tests.append(test(model, test_loader))
        scheduler.step()
    return {"losses": losses, "tests": tests, "lr": scheduler.get_last_lr()}
