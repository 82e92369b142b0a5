"""The graph walk behind ``backward`` and ``grad``: on arrays, or recorded under ``create_graph``."""
from __future__ import annotations

from minidl import backend
from minidl.autograd.function import FunctionCtx, GraphContext, check_finite, check_saved_versions
from minidl.autograd.grad_mode import _MODES
from minidl.tensors import Tensor


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into the ``.grad`` of every leaf they depend on.

    Args:
        tensors: a Tensor or a sequence of them; each must require grad.
        grad_tensors: the gradient of each (None for a one-element tensor: a 1).
        retain_graph: keep the saved values for another backward (default: ``create_graph``).
        create_graph: record the backward itself, so ``.grad`` can be differentiated again.
        inputs: accumulate only into these tensors' ``.grad`` (leaves or not), running only the
            part of the graph that leads to them.
    """
    roots = _as_list(tensors)
    seeds = _seeds("backward", roots, grad_tensors, create_graph)
    targets = None if inputs is None else _targets("backward", inputs)
    retain = create_graph if retain_graph is None else retain_graph
    _walk(roots, seeds, retain, create_graph, targets, captured=None)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, without touching any ``.grad``.

    Returns one Tensor per input. An input the outputs do not depend on is an error unless
    ``allow_unused`` (then None, or zeros with ``materialize_grads``). With ``create_graph`` the
    gradients carry a graph and can be differentiated again; ``retain_graph`` defaults to it.
    """
    roots = _as_list(outputs)
    targets = _targets("grad", inputs)
    seeds = _seeds("grad", roots, grad_outputs, create_graph)
    if allow_unused is None:
        allow_unused = materialize_grads
    if materialize_grads and not allow_unused:
        raise ValueError("grad: materialize_grads=True needs allow_unused=True (or left as None)")
    captured: dict = {}
    retain = create_graph if retain_graph is None else retain_graph
    _walk(roots, seeds, retain, create_graph, targets, captured)
    results, seen = [], set()
    for index, tensor in enumerate(targets):
        gradient = captured.get(_key(tensor))
        if gradient is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {index} (shape {tuple(tensor.shape)}) was not used "
                                   "to compute the outputs; pass allow_unused=True if that is meant")
            if materialize_grads:
                gradient = Tensor(backend.get_array_module(tensor._data).zeros_like(tensor._data))
        elif not isinstance(gradient, Tensor):
            # one array may reach two inputs (x + y hands gz to both): each result owns its memory
            gradient = Tensor(gradient.copy() if id(gradient) in seen else gradient)
            seen.add(id(gradient._data))
        results.append(gradient)
    return tuple(results)


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _key(tensor: Tensor):
    """A leaf is itself; a non-leaf is (its node, which output) — the place its gradient arrives."""
    return id(tensor) if tensor._ctx is None else (tensor._ctx, tensor._output_index)


def _targets(op: str, inputs) -> list:
    targets = _as_list(inputs)
    if not targets:
        raise RuntimeError(f"{op}: inputs is empty; name the tensors to differentiate with respect to")
    for index, tensor in enumerate(targets):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{op}: input {index} is a {type(tensor).__name__}, expected a Tensor")
        if not tensor.requires_grad:
            raise RuntimeError(f"{op}: input {index} (shape {tuple(tensor.shape)}) does not "
                               "require grad")
    return targets


def _seeds(op: str, roots: list, grads, create_graph: bool) -> list:
    """The gradient each root starts with: given, or a 1 for a one-element root."""
    grads = [None] * len(roots) if grads is None else _as_list(grads)
    if len(grads) != len(roots):
        raise RuntimeError(f"{op}: got {len(grads)} gradients for {len(roots)} tensors")
    seeds = []
    for index, (root, given) in enumerate(zip(roots, grads)):
        if not isinstance(root, Tensor) or not root.requires_grad:
            raise RuntimeError(f"{op}: tensor {index} does not require grad and has no grad_fn")
        xp = backend.get_array_module(root._data)
        if given is None:
            if root._data.size != 1:
                raise RuntimeError(f"{op}: grad can be implicitly created only for scalar outputs, "
                                   f"got a tensor of shape {tuple(root.shape)}; pass a gradient")
            seed = Tensor(xp.ones_like(root._data))
        else:
            seed = given if isinstance(given, Tensor) else Tensor(xp.asarray(given))
            if seed.shape != root.shape:
                raise RuntimeError(f"{op}: grad has shape {tuple(seed.shape)} but tensor {index} "
                                   f"has shape {tuple(root.shape)}")
        seeds.append(seed if create_graph else seed._data)
    return seeds


def _walk(roots, seeds, retain_graph: bool, create_graph: bool, targets, captured) -> None:
    """Run the graph backwards from ``roots`` (Kahn's algorithm on dependency counts, so depth is
    unbounded). Gradients go to every leaf's ``.grad`` (``targets`` None), to the targets' ``.grad``
    (``captured`` None) or into ``captured``; with targets, only nodes on a path to one run.
    Grad mode is ``create_graph`` throughout: on, the backward code records a graph of Tensors.
    """
    targets_by_key = None if targets is None else {_key(t): t for t in targets}
    target_keys = None if targets is None else set(targets_by_key)

    leaf_grads: dict = {}  # id -> [leaf, summed gradient]: hooks see each leaf's total once

    def collect_leaf(leaf: Tensor, gradient) -> None:
        if target_keys is not None and id(leaf) not in target_keys:
            return
        entry = leaf_grads.get(id(leaf))
        if entry is None:
            leaf_grads[id(leaf)] = [leaf, gradient]
        else:
            entry[1] = entry[1] + gradient

    previous_mode = _MODES.grad
    _MODES.grad = create_graph
    try:
        pending: dict = {}
        for root, seed in zip(roots, seeds):
            if root._ctx is None:
                collect_leaf(root, seed)
            else:
                _add_pending(pending, root, seed)
        nodes = list(pending)
        # a hooked leaf's hooks run as soon as its last gradient has come (PyTorch's
        # AccumulateGrad), so that DDP can start communicating while the walk goes on; with
        # targets, only they are delivered, at the end
        dependencies, hooked = _count_dependencies(nodes)
        if targets is not None:
            hooked = {}
        needed = None if target_keys is None else _nodes_leading_to(nodes, target_keys)
        ready = [node for node in nodes if dependencies[node] == 0]
        while ready:
            node = ready.pop()
            output_grads = pending.pop(node, None)
            if output_grads is not None:
                _prepare_output_grads(node, output_grads, create_graph)
                if target_keys is not None:  # non-leaf targets among this node's outputs
                    for index, gradient in enumerate(output_grads):
                        if (node, index) in target_keys:
                            _deliver(targets_by_key[(node, index)], gradient, captured, create_graph)
                if needed is None or node in needed:
                    wanted = None if needed is None else _wanted_inputs(node, target_keys, needed)
                    input_grads = _run_node(node, output_grads, retain_graph, create_graph, wanted)
                    for index, (parent, gradient) in enumerate(zip(node._inputs, input_grads)):
                        if parent is None or gradient is None or not parent._requires_grad or (
                                wanted is not None and not wanted[index]):
                            continue
                        _check_gradient(node, parent, gradient, create_graph)
                        if parent._ctx is None:
                            collect_leaf(parent, gradient)
                        else:
                            _add_pending(pending, parent, gradient)
            for parent in node._inputs:
                if parent is not None and parent._ctx is not None:
                    dependencies[parent._ctx] -= 1
                    if dependencies[parent._ctx] == 0:
                        ready.append(parent._ctx)
                elif parent is not None and id(parent) in hooked:
                    hooked[id(parent)] -= 1
                    if hooked[id(parent)] == 0 and id(parent) in leaf_grads:
                        leaf, gradient = leaf_grads.pop(id(parent))
                        _deliver(leaf, _run_hooks(leaf, gradient, create_graph), captured,
                                 create_graph)
            if node._released:  # a freed graph keeps nothing alive (think of a loss kept in a list)
                node._inputs = ()
        for leaf, gradient in leaf_grads.values():
            if leaf._hooks:
                gradient = _run_hooks(leaf, gradient, create_graph)
            _deliver(leaf, gradient, captured, create_graph)
    finally:
        _MODES.grad = previous_mode


def _deliver(tensor: Tensor, gradient, captured, create_graph: bool) -> None:
    """A target's gradient: into ``captured`` (grad) or its ``.grad`` (backward)."""
    if captured is not None:
        key = _key(tensor)
        previous = captured.get(key)
        captured[key] = gradient if previous is None else previous + gradient
    elif not tensor._retains_grad:  # a retained non-leaf already holds its gradient
        _accumulate(tensor, gradient, create_graph)


def _add_pending(pending: dict, tensor: Tensor, gradient) -> None:
    slots = pending.setdefault(tensor._ctx, [None] * len(tensor._ctx._output_meta))
    previous = slots[tensor._output_index]
    slots[tensor._output_index] = gradient if previous is None else previous + gradient


def _count_dependencies(roots: list) -> tuple:
    """How many graph edges point into each node (so a node runs once all its grads arrived),
    and into each leaf that has hooks (id -> count: its hooks run when the last has arrived)."""
    counts = {root: 0 for root in roots}
    hooked: dict = {}
    stack = list(roots)
    seen = set(roots)
    while stack:
        node = stack.pop()
        if node._released:  # its inputs are gone too: say why before anything runs
            _raise_freed(node)
        for parent in node._inputs:
            if parent is None:
                continue
            child = parent._ctx
            if child is None:
                if parent._hooks:
                    hooked[id(parent)] = hooked.get(id(parent), 0) + 1
                continue
            counts[child] = counts.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return counts, hooked


def _nodes_leading_to(roots: list, target_keys: set) -> set:
    """The nodes whose backward sends a gradient towards a target (iterative post-order walk)."""
    needed, visited = set(), set()
    stack = [(node, False) for node in roots]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            if any(parent is not None and parent._requires_grad and (
                    _key(parent) in target_keys or parent._ctx in needed) for parent in node._inputs):
                needed.add(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        stack.extend((p._ctx, False) for p in node._inputs
                     if p is not None and p._ctx is not None and p._ctx not in visited)
    return needed


def _prepare_output_grads(node: FunctionCtx, output_grads: list, create_graph: bool) -> None:
    """Zeros for outputs that got no gradient; hooks and retain_grad of watched outputs."""
    for index, (shape, dtype) in enumerate(node._output_meta):
        if output_grads[index] is None:
            zeros = node.xp.zeros(shape, dtype=dtype)
            output_grads[index] = Tensor(zeros) if create_graph else zeros
        watched = node._watched.get(index) if node._watched is not None else None
        if watched is not None:
            output_grads[index] = _run_hooks(watched, output_grads[index], create_graph)
            if watched._retains_grad:
                gradient = output_grads[index]
                watched.grad = gradient if create_graph else Tensor(gradient.copy())


def _wanted_inputs(node: FunctionCtx, target_keys: set, needed: set) -> tuple:
    """``needs_input_grad`` for one run of ``node`` towards targets: an input is wanted only if
    it is a target or its node leads to one (PyTorch's engine does the same), so that grad(y, [x])
    computes no weight gradient it would throw away."""
    return tuple([need and (_key(parent) in target_keys or parent._ctx in needed)
                  for need, parent in zip(node.needs_input_grad, node._inputs)])


def _run_node(node: FunctionCtx, output_grads: list, retain_graph: bool, create_graph: bool,
              wanted: tuple | None = None):
    """Run one node's backward (``wanted``: its ``needs_input_grad`` for this run, if narrower)."""
    if wanted is None:
        return _run_backward(node, output_grads, retain_graph, create_graph)
    requested, node.needs_input_grad = node.needs_input_grad, wanted
    try:
        return _run_backward(node, output_grads, retain_graph, create_graph)
    finally:
        node.needs_input_grad = requested


def _run_backward(node: FunctionCtx, output_grads: list, retain_graph: bool, create_graph: bool):
    if node._saved:
        check_saved_versions(node)
    if create_graph:
        from minidl.ops.tensor_namespace import tensor_namespace  # ops build on autograd

        context = GraphContext(node, tensor_namespace(node.xp))
        input_grads = node._fn._graph_backward(context, *output_grads)
    else:
        input_grads = node._fn.backward(node, *output_grads)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(node._inputs):
        raise RuntimeError(f"{node.name} returned {len(input_grads)} gradients, expected "
                           f"{len(node._inputs)} (one per forward argument, None for non-tensors)")
    if _MODES.anomaly:
        check_finite(node, input_grads, "backward gradient")
    if not retain_graph:
        node._release()
    return input_grads


def _raise_freed(node: FunctionCtx) -> None:
    raise RuntimeError(f"{node.name}: trying to backward through the graph a second time; the "
                       "saved values were freed by the first backward. Pass retain_graph=True "
                       "to the first backward if you need to backward twice.")


def _check_gradient(node: FunctionCtx, parent: Tensor, gradient, create_graph: bool) -> None:
    if gradient.shape != parent._data.shape:
        raise RuntimeError(f"{node.name} returned a gradient of shape {tuple(gradient.shape)} "
                           f"for an input of shape {tuple(parent.shape)}")
    if create_graph and not isinstance(gradient, Tensor):
        raise RuntimeError(f"{node.name}: under create_graph=True the backward returned a plain "
                           f"{type(gradient).__name__}, so it cannot be differentiated again. "
                           "Write the backward with operators and ctx.xp functions (see "
                           "minidl.autograd), or call another Function for a kernel.")


def _run_hooks(tensor: Tensor, gradient, create_graph: bool):
    for hook in tensor._hooks or ():
        replaced = hook(gradient if create_graph else Tensor(gradient))
        if replaced is not None:
            _check_hook_result(hook, replaced, gradient)
            if create_graph:
                gradient = replaced if isinstance(replaced, Tensor) else Tensor(replaced)
            else:
                gradient = replaced._data if isinstance(replaced, Tensor) else replaced
    return gradient


def _check_hook_result(hook, replaced, gradient) -> None:
    """A hook may change a gradient's values, never its shape, dtype or device (PyTorch's rule)."""
    name = getattr(hook, "__name__", repr(hook))
    if not isinstance(replaced, Tensor) and not hasattr(replaced, "shape"):
        raise TypeError(f"hook '{name}' returned a {type(replaced).__name__}; expected a Tensor "
                        "(or None to keep the gradient)")
    array = replaced._data if isinstance(replaced, Tensor) else replaced
    expected = gradient._data if isinstance(gradient, Tensor) else gradient
    if array.shape != expected.shape:
        raise RuntimeError(f"hook '{name}' has changed the size of value: expected shape "
                           f"{tuple(expected.shape)}, got {tuple(array.shape)}")
    if array.dtype != expected.dtype:
        raise RuntimeError(f"hook '{name}' has changed the type of value: expected {expected.dtype}, "
                           f"got {array.dtype}")
    if backend.device_of(array) != backend.device_of(expected):
        raise RuntimeError(f"hook '{name}' has changed the device of value: expected "
                           f"{backend.device_of(expected)}, got {backend.device_of(array)}")


def _accumulate(tensor: Tensor, gradient, create_graph: bool) -> None:
    """``.grad += gradient``: in place on arrays (as PyTorch), out of place when a graph is kept."""
    if create_graph:
        tensor.grad = gradient if tensor.grad is None else tensor.grad + gradient
    elif tensor.grad is None:
        # a copy: a backward may hand the same array to several inputs, and optimizers update in place
        xp = backend.get_array_module(gradient)
        tensor.grad = Tensor(xp.array(gradient, dtype=tensor.dtype, copy=True))
    elif tensor.grad.requires_grad:  # kept from an earlier create_graph backward
        tensor.grad = Tensor(tensor.grad._data + gradient)
    else:
        tensor.grad._data += gradient
