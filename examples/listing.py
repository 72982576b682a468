"""Run an example script step by step, so the notebook shows and runs the scripts' own code.

examples/chapter2.ipynb walks through examples/book_mnist.py and examples/from_scratch.py a
few statements at a time instead of keeping a second copy of them:

    book = Listing("book_mnist.py", globals())
    book.run_through("mnist.load_data()")          # shows, then runs, the statements so far
    history = book.run_through("model.fit", epochs=1)   # a short run: epochs=5 -> 1

``run_through(text)`` runs the statements from where the last step stopped up to the first
one whose source contains ``text`` (an error if there is none, so a changed script fails
loudly rather than being skipped); keyword overrides replace that keyword's value in every
call of those statements (the shown source notes the values that differ from the
script's). The value of a final expression statement is returned, as a
notebook cell would show it.

``run_statements`` (the same for a notebook cell run as a script: examples/chapter2.py) and
``show_markdown`` (a table rendered in a notebook, printed as text elsewhere) serve both.
"""
import ast
import copy
import os

__all__ = ["Listing", "run_statements", "show_markdown"]


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def show_markdown(text):
    """Show Markdown ``text``: rendered in a notebook, printed as it is elsewhere."""
    if _in_notebook():
        from IPython.display import Markdown, display
        display(Markdown(text))
    else:
        print(text)


def run_statements(nodes, namespace, filename):
    """Run the statements ``nodes`` (ast) in ``namespace``; return the value of the last one
    when it is an expression statement (what a notebook shows under a cell), else None."""
    nodes = list(nodes)
    namespace.setdefault("__builtins__", __builtins__)
    last = nodes.pop() if nodes and isinstance(nodes[-1], ast.Expr) else None
    if nodes:
        module = ast.fix_missing_locations(ast.Module(body=nodes, type_ignores=[]))
        exec(compile(module, filename, "exec"), namespace)
    if last is None:
        return None
    expr = ast.fix_missing_locations(ast.Expression(body=last.value))
    return eval(compile(expr, filename, "eval"), namespace)


class _Override(ast.NodeTransformer):
    def __init__(self, values):
        self.values = values
        self.used = set()       # keywords found
        self.changed = set()    # ... whose value differs from the script's

    def visit_Call(self, node):
        self.generic_visit(node)
        for kw in node.keywords:
            if kw.arg in self.values:
                new = self.values[kw.arg]
                self.used.add(kw.arg)
                if not (isinstance(kw.value, ast.Constant) and kw.value.value == new
                        and type(kw.value.value) is type(new)):
                    self.changed.add(kw.arg)
                kw.value = ast.Constant(new)
        return node


class Listing:
    """The top-level statements of a Python file, run in order in ``namespace``."""

    def __init__(self, path, namespace=None, show=True):
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), path)
        self.path = path
        with open(path, encoding="utf-8") as f:
            self.source = f.read()
        self.lines = self.source.splitlines()
        body = ast.parse(self.source, filename=path).body
        if body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(
                body[0].value.value, str):
            body = body[1:]                              # the module docstring
        self.statements = body
        self.namespace = {} if namespace is None else namespace
        self.position = 0
        self.show = show

    def __repr__(self):
        return (f"Listing({os.path.basename(self.path)!r}, "
                f"{self.position}/{len(self.statements)} statements run)")

    @property
    def done(self):
        return self.position == len(self.statements)

    def _find(self, text):
        for i in range(self.position, len(self.statements)):
            if text in self.segment(i, i + 1):
                return i
        name = os.path.basename(self.path)
        raise LookupError(f"{name}: no statement containing {text!r} after statement "
                          f"{self.position} of {len(self.statements)}")

    def segment(self, start, stop):
        """Source lines of statements [start, stop), comments between them included."""
        first = self.statements[start].lineno
        if start > 0:
            first = self.statements[start - 1].end_lineno + 1
        for deco in getattr(self.statements[start], "decorator_list", []):
            first = min(first, deco.lineno)
        last = self.statements[stop - 1].end_lineno
        return "\n".join(self.lines[first - 1:last]).strip("\n")

    def _display(self, source, overrides):
        if not self.show:
            return
        note = ""
        if overrides:
            note = ("\n# run here with " + ", ".join(f"{k}={v!r}" for k, v in overrides.items())
                    + " (the short setting)")
        header = f"# {os.path.basename(self.path)}\n"
        if _in_notebook():
            show_markdown(f"```python\n{header}{source}{note}\n```")
        else:
            print(f"{header}{source}{note}\n")

    def run_through(self, text, **overrides):
        """Show and run the statements up to the first containing ``text``; return the value
        of the last one when it is an expression."""
        stop = self._find(text) + 1
        return self._run(stop, overrides)

    def run_rest(self, **overrides):
        """Show and run every statement not run yet."""
        return self._run(len(self.statements), overrides)

    def _run(self, stop, overrides):
        start = self.position
        nodes = [copy.deepcopy(n) for n in self.statements[start:stop]]
        changer = _Override(overrides)
        nodes = [changer.visit(n) for n in nodes]
        unused = set(overrides) - changer.used
        if unused:
            raise LookupError(f"{os.path.basename(self.path)}: no call with keyword "
                              f"{sorted(unused)} in the statements to run")
        changed = {k: overrides[k] for k in sorted(changer.changed)}
        self._display(self.segment(start, stop), changed)
        value = run_statements(nodes, self.namespace, self.path)
        self.position = stop
        return value
