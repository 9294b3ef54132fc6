"""The lessons: what the library is for, told with it.

The textbook backprop of the deeplearning.ai course and of Nielsen's book (`manual`), the
comparisons of those with autodiff tensor by tensor (`compare`), the built-in dataset
(`datasets`), the training runs with and without L2 (`training`), the answers in words
(`answers`) and the `tinygrad-l2` command (`cli`).  The lessons import the library; nothing in
the library imports the lessons.
"""
