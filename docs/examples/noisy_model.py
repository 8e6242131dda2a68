"""A small noise-injection defense on robbench's digits, for `robbench run --model` and
`robbench.evaluate`: a linear classifier that adds Gaussian noise to every input it sees.

    robbench run --model docs/examples/noisy_model.py:build --dataset digits --attack eot-pgd --n 50

It declares nothing about its randomness: robbench finds out by classifying the same batch
twice, and evaluates it as a random model (EOT draws for the attack, R passes for scoring).
"""

import torch

import robbench


class NoisyLinear(torch.nn.Module):
    """Gaussian noise of standard deviation ``sigma`` on the input, then a linear layer."""

    def __init__(self, sigma: float = 0.3) -> None:
        super().__init__()
        self.sigma = sigma
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x + self.sigma * torch.randn_like(x)).flatten(1))


def build(dataset: str = "digits") -> NoisyLinear:
    """The model, trained for a second on the dataset's training images (seeded)."""
    data = robbench.load_dataset(dataset)
    torch.manual_seed(0)
    model = NoisyLinear()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(data.x_train), data.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
