"""Hand-derived numpy backprop, equation by equation, in the two conventions learners meet.

deeplearning.ai (Deep Learning Specialization, course 1-2): column-major (features × m
examples), LINEAR -> RELU × (L−1) -> LINEAR -> SIGMOID, binary cross-entropy averaged over m,
L2 term (1/m)(λ/2)·Σ‖W_l‖².

Nielsen (Neural Networks and Deep Learning, ch. 2-3, `network2.py`): sigmoid layers, one
column vector per example, backprop per example, summed over a mini-batch; L2 as the update
w ← (1 − ηλ/n)·w − (η/m)·Σ∇w.

Nothing here uses the autodiff engine: this is the reference it is compared with.
"""
import numpy as np

from .costs import check_cost

# ---- deeplearning.ai convention --------------------------------------------------------------


def sigmoid(Z):
    """σ(Z) = 1 / (1 + e^(−Z))."""
    return 1 / (1 + np.exp(-Z))


def relu(Z):
    return np.maximum(0, Z)


def dlai_initialize(layer_dims, seed=3, dtype=np.float64):
    """W_l ~ N(0, 1)·√(2 / n_(l−1)) (He), b_l = 0, as the course's deep-network notebooks do.
    Returns {"W1": (n1, n0), "b1": (n1, 1), ...}."""
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):
        parameters[f"W{l}"] = (rng.standard_normal((layer_dims[l], layer_dims[l - 1]))
                               * np.sqrt(2 / layer_dims[l - 1])).astype(dtype)
        parameters[f"b{l}"] = np.zeros((layer_dims[l], 1), dtype=dtype)
    return parameters


def dlai_forward(X, parameters):
    """Z_l = W_l·A_(l−1) + b_l;  A_l = relu(Z_l) for l < L, A_L = σ(Z_L).

    Returns A_L and the caches [(A_(l−1), W_l, b_l, Z_l), ...] the backward pass needs."""
    L = len(parameters) // 2
    A, caches = X, []
    for l in range(1, L + 1):
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        Z = W @ A + b
        caches.append((A, W, b, Z))
        A = relu(Z) if l < L else sigmoid(Z)
    return A, caches


def dlai_cost(AL, Y, parameters=None, lambd=0.0, cost="cross_entropy"):
    """J = −(1/m)·Σ[Y·log A_L + (1−Y)·log(1−A_L)]  +  (1/m)(λ/2)·Σ_l ‖W_l‖²_F
    (cost="quadratic": the first term is (1/m)·Σ ½‖A_L − Y‖²)."""
    m = Y.shape[1]
    if check_cost("dlai_cost", cost) == "quadratic":
        data = 0.5 * np.sum((AL - Y) ** 2) / m
    else:
        data = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m
    if not lambd:
        return data
    L = len(parameters) // 2
    squares = sum(np.sum(np.square(parameters[f"W{l}"])) for l in range(1, L + 1))
    return data + (1 / m) * (lambd / 2) * squares


def dlai_backward(AL, Y, caches, lambd=0.0, cost="cross_entropy"):
    """The course's L_model_backward, with its L2 variant:

        dA_L = −(Y/A_L − (1−Y)/(1−A_L))       (cost="quadratic": dA_L = A_L − Y)
        dZ_l = dA_l ⊙ g_l'(Z_l)              (g' = σ(1−σ) for l = L, 1[Z > 0] otherwise)
        dW_l = (1/m)·dZ_l·A_(l−1)ᵀ + (λ/m)·W_l     <- the only place λ appears
        db_l = (1/m)·Σ_columns dZ_l
        dA_(l−1) = W_lᵀ·dZ_l

    The penalty depends on W alone, so it adds (λ/m)·W_l to dW_l and to nothing else: dA, dZ
    and db are the same with and without it.  Note that the course's dA and dZ carry no 1/m
    (it is applied in dW and db); the true ∂J/∂A_l and ∂J/∂Z_l are dA_l/m and dZ_l/m.
    Returns {"dA3": ..., "dZ3": ..., "dW3": ..., "db3": ..., ...} for every layer.
    """
    L = len(caches)
    m = AL.shape[1]
    if check_cost("dlai_backward", cost) == "quadratic":
        grads = {f"dA{L}": AL - Y}
    else:
        grads = {f"dA{L}": -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))}
    for l in range(L, 0, -1):
        A_prev, W, b, Z = caches[l - 1]
        dA = grads[f"dA{l}"]
        if l == L:
            s = sigmoid(Z)
            dZ = dA * s * (1 - s)
        else:
            dZ = dA * (Z > 0)
        grads[f"dZ{l}"] = dZ
        grads[f"dW{l}"] = (1 / m) * dZ @ A_prev.T + (lambd / m) * W
        grads[f"db{l}"] = (1 / m) * np.sum(dZ, axis=1, keepdims=True)
        if l > 1:
            grads[f"dA{l - 1}"] = W.T @ dZ
    return grads


# ---- Nielsen's convention --------------------------------------------------------------------


def sigmoid_prime(z):
    """σ'(z) = σ(z)·(1 − σ(z))."""
    return sigmoid(z) * (1 - sigmoid(z))


def nielsen_initialize(sizes, seed=0, dtype=np.float64):
    """network2.py's default_weight_initializer: w ~ N(0, 1/n_in), b ~ N(0, 1).
    Returns (weights, biases): lists of (n_out, n_in) and (n_out, 1) arrays."""
    rng = np.random.default_rng(seed)
    biases = [rng.standard_normal((y, 1)).astype(dtype) for y in sizes[1:]]
    weights = [(rng.standard_normal((y, x)) / np.sqrt(x)).astype(dtype)
               for x, y in zip(sizes[:-1], sizes[1:])]
    return weights, biases


def nielsen_delta(cost, z, a, y):
    """The output error δ^L = ∂C_x/∂z^L:
    quadratic C = ½‖a − y‖²:  δ = (a − y) ⊙ σ'(z);   cross-entropy:  δ = a − y."""
    if check_cost("nielsen_delta", cost) == "quadratic":
        return (a - y) * sigmoid_prime(z)
    return a - y


def nielsen_backprop(weights, biases, x, y, cost="quadratic"):
    """Backprop for ONE example x (a column vector), the book's four equations:

        δ^L = ∇_a C ⊙ σ'(z^L)                         (BP1; cost-specific, see nielsen_delta)
        δ^l = ((w^(l+1))ᵀ δ^(l+1)) ⊙ σ'(z^l)          (BP2)
        ∂C/∂b^l = δ^l                                 (BP3)
        ∂C/∂w^l = δ^l (a^(l−1))ᵀ                      (BP4)

    Returns (nabla_w, nabla_b), lists shaped like weights and biases."""
    activation, activations, zs = x, [x], []
    for w, b in zip(weights, biases):
        z = w @ activation + b
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    nabla_w = [None] * len(weights)
    nabla_b = [None] * len(biases)
    delta = nielsen_delta(cost, zs[-1], activations[-1], y)
    nabla_b[-1], nabla_w[-1] = delta, delta @ activations[-2].T
    for l in range(2, len(weights) + 1):
        delta = (weights[-l + 1].T @ delta) * sigmoid_prime(zs[-l])
        nabla_b[-l], nabla_w[-l] = delta, delta @ activations[-l - 1].T
    return nabla_w, nabla_b


def nielsen_update_mini_batch(weights, biases, mini_batch, eta, lmbda, n, cost="quadratic"):
    """One step of network2.py's update_mini_batch, L2 as weight decay:

        w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∇w C_x
        b ← b − (η/m)·Σ_x ∇b C_x                  (biases are not decayed)

    `mini_batch` is a list of (x, y) column vectors, m = len(mini_batch), n = training-set
    size.  Returns new (weights, biases)."""
    sum_w = [np.zeros_like(w) for w in weights]
    sum_b = [np.zeros_like(b) for b in biases]
    for x, y in mini_batch:
        nabla_w, nabla_b = nielsen_backprop(weights, biases, x, y, cost)
        sum_w = [s + g for s, g in zip(sum_w, nabla_w)]
        sum_b = [s + g for s, g in zip(sum_b, nabla_b)]
    m = len(mini_batch)
    weights = [(1 - eta * lmbda / n) * w - (eta / m) * s for w, s in zip(weights, sum_w)]
    biases = [b - (eta / m) * s for b, s in zip(biases, sum_b)]
    return weights, biases
