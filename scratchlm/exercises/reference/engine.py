"""Hidden reference of the engine track (instructor source only: never released)."""

from contextlib import contextmanager

import numpy as np

from scratchlm.exercises.minigrad import Value, init_mlp, mlp


def topological_order(root):
    order, seen = [], {id(root)}
    stack = [(root, iter(root.parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, iter(parent.parents)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def unbroadcast(grad, shape):
    grad = np.asarray(grad)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def backward(root, grad=None):
    root.grad = np.ones_like(root.data) if grad is None else np.asarray(grad, dtype=np.float64)
    for node in reversed(topological_order(root)):
        if node.grad is None:
            continue
        for parent, local in zip(node.parents, node.local_grads):
            share = unbroadcast(local(node.grad), parent.data.shape)
            parent.grad = share if parent.grad is None else parent.grad + share


@contextmanager
def no_grad():
    previous = Value.recording
    Value.recording = False
    try:
        yield
    finally:
        Value.recording = previous


def train(X, Y, steps, lr, hidden=8, seed=0):
    params = init_mlp(X.shape[1], hidden, Y.shape[1], seed)
    losses = []
    for _ in range(steps):
        for p in params:
            p.grad = None
        d = mlp(params, X) - Y
        loss = (d * d).mean()
        backward(loss)
        for p in params:
            p.data = p.data - lr * p.grad
        losses.append(float(loss.data))
    return losses
