"""Built-in network architectures.

Every built-in module outputs logits (no softmax): the estimator pairs them with
``torch.nn.CrossEntropyLoss`` and applies the softmax only in ``predict_proba``.
Dense (``Linear``) layers are called ``layer1``, ``layer2``, ... as in Table 1 of
Reiners et al.; they are the layers regularised and pruned by default.
"""

import math
from numbers import Integral

import torch
from torch import nn

__all__ = ["MLP", "LeNet5", "VGGLike", "BUILTIN_MODULES"]


def _as_images(x, shape):
    """View a batch as images of ``shape`` (C, H, W), flat or image-shaped."""
    return x.reshape(x.shape[0], *shape)


class MLP(nn.Module):
    """Fully connected ReLU network (LeNet-300-100 with ``(300, 100)``).

    Parameters
    ----------
    n_features : int
        Number of input features; image-shaped input is flattened.
    n_classes : int
        Number of output logits.
    hidden_layer_sizes : tuple of int, default=(100,)
        Width of each hidden layer, as in scikit-learn's ``MLPClassifier``.
    """

    def __init__(self, n_features, n_classes, hidden_layer_sizes=(100,)):
        super().__init__()
        _check_hidden_layer_sizes(hidden_layer_sizes)
        sizes = [int(n_features), *map(int, hidden_layer_sizes), int(n_classes)]
        self.n_layers = len(sizes) - 1
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.add_module(f"layer{i}", nn.Linear(n_in, n_out))

    def forward(self, x):
        x = x.flatten(1)
        for i in range(1, self.n_layers + 1):
            x = getattr(self, f"layer{i}")(x)
            if i < self.n_layers:
                x = torch.relu(x)
        return x


def _check_hidden_layer_sizes(sizes):
    """Widths must be positive ints: a layer of width 0 has no weight to count."""
    ok = isinstance(sizes, (tuple, list)) and all(
        isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in sizes
    )
    if not ok:
        raise ValueError(
            "The 'hidden_layer_sizes' parameter of MLP (module__hidden_layer_sizes) must be "
            f"a tuple of positive ints. Got {sizes!r} instead."
        )


class LeNet5(nn.Module):
    """LeNet-5 as in Reiners et al., Table 1(a) (60,074 parameters on MNIST).

    Two 3×3 convolutions (6 and 16 maps) each followed by 2×2 average pooling,
    then dense layers 120-84-``n_classes``; ReLU everywhere but the output.

    Parameters
    ----------
    n_classes : int, default=10
    input_shape : tuple of int, default=(1, 28, 28)
        (channels, height, width); flat input of matching size is reshaped.
    """

    def __init__(self, n_classes=10, input_shape=(1, 28, 28)):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        c, h, w = self.input_shape
        self.conv1 = nn.Conv2d(c, 6, kernel_size=3)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=3)
        h, w = ((h - 2) // 2 - 2) // 2, ((w - 2) // 2 - 2) // 2
        if h < 1 or w < 1:
            raise ValueError(f"LeNet5 needs images of at least 10x10; got {input_shape}.")
        self.layer1 = nn.Linear(16 * h * w, 120)
        self.layer2 = nn.Linear(120, 84)
        self.layer3 = nn.Linear(84, n_classes)

    def forward(self, x):
        x = _as_images(x, self.input_shape)
        x = nn.functional.avg_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.layer1(x.flatten(1)))
        x = torch.relu(self.layer2(x))
        return self.layer3(x)


class VGGLike(nn.Module):
    """The VGG-like CIFAR-10 network of Reiners et al., Table 1(b).

    Three blocks of two 3×3 convolutions (32, 64, 128 maps) with ELU and batch
    normalisation, each block closed by 2×2 max pooling and dropout, then one
    dense layer ``layer1``.

    Parameters
    ----------
    n_classes : int, default=10
    input_shape : tuple of int, default=(3, 32, 32)
    dropout : float, default=0.2
    """

    def __init__(self, n_classes=10, input_shape=(3, 32, 32), dropout=0.2):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        c, h, w = self.input_shape
        layers = []
        for block, width in enumerate((32, 64, 128)):
            for j in range(2):
                n_in = c if (block == 0 and j == 0) else (width if j else width // 2)
                layers += [
                    nn.Conv2d(n_in, width, 3, padding=1),
                    nn.ELU(),
                    nn.BatchNorm2d(width),
                ]
            layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
        self.features = nn.Sequential(*layers)
        self.layer1 = nn.Linear(128 * (h // 8) * (w // 8), n_classes)

    def forward(self, x):
        x = self.features(_as_images(x, self.input_shape))
        return self.layer1(x.flatten(1))


def _image_shape(n_features, input_shape, channels):
    """Infer (C, H, W) from the data; flat input must be C·s·s for a square s."""
    if input_shape is not None:
        return tuple(input_shape)
    side = math.isqrt(n_features // channels)
    if channels * side * side != n_features:
        raise ValueError(
            f"Cannot view {n_features} features as {channels}-channel square "
            "images; pass image-shaped X of shape (n, C, H, W)."
        )
    return (channels, side, side)


def _mlp(n_features, n_classes, input_shape, **kwargs):
    return MLP, {"n_features": n_features, "n_classes": n_classes, **kwargs}


def _lenet300(n_features, n_classes, input_shape, **kwargs):
    kwargs.setdefault("hidden_layer_sizes", (300, 100))
    return _mlp(n_features, n_classes, input_shape, **kwargs)


def _lenet5(n_features, n_classes, input_shape, **kwargs):
    shape = _image_shape(n_features, input_shape, channels=1)
    return LeNet5, {"n_classes": n_classes, "input_shape": shape, **kwargs}


def _vgg(n_features, n_classes, input_shape, **kwargs):
    shape = _image_shape(n_features, input_shape, channels=3)
    return VGGLike, {"n_classes": n_classes, "input_shape": shape, **kwargs}


#: name -> ``factory(n_features, n_classes, input_shape, **module_kwargs)``
#: returning the module class and the keyword arguments that size it.
BUILTIN_MODULES = {
    "mlp": _mlp,
    "lenet300": _lenet300,
    "lenet5": _lenet5,
    "vgg": _vgg,
}
