"""The shape of PyTorch's word_language_model example: Embedding -> LSTM -> Linear, hidden states
carried across batches and detached, SGD written by hand with p.data.add_, gradient clipping, and a
checkpoint saved to and loaded from a file object."""
import io

import numpy as np
import torch
import torch.nn as nn

VOCAB, EMBED, HIDDEN, LAYERS, BPTT, BATCH = 11, 8, 12, 2, 5, 3


class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(VOCAB, EMBED)
        self.rnn = nn.LSTM(EMBED, HIDDEN, LAYERS)
        self.decoder = nn.Linear(HIDDEN, VOCAB)

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output).view(-1, VOCAB), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(LAYERS, bsz, HIDDEN), weight.new_zeros(LAYERS, bsz, HIDDEN))


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def get_batch(source, i):
    seq_len = min(BPTT, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def main():
    rng = np.random.default_rng(0)
    corpus = torch.tensor(rng.integers(0, VOCAB, 120), dtype=torch.long)
    train_data = batchify(corpus, BATCH)
    model = RNNModel()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.uniform(-0.3, 0.3, tuple(p.shape)), dtype=torch.float32))
    criterion = nn.CrossEntropyLoss()
    lr, losses = 5.0, []
    for epoch in range(2):
        model.train()
        hidden = model.init_hidden(BATCH)
        for i in range(0, train_data.size(0) - 1, BPTT):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            losses.append(loss.item())
        lr /= 2
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    reloaded = RNNModel()
    reloaded.load_state_dict(torch.load(buffer))
    reloaded.rnn.flatten_parameters()
    reloaded.eval()
    with torch.no_grad():
        output, _ = reloaded(train_data[:BPTT], reloaded.init_hidden(BATCH))
    return {"losses": losses, "tokens": output.argmax(dim=1).tolist()}
