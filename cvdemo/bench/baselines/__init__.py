"""The plain-PyTorch baselines the benchmarks compare against, kept as ordinary code a textbook would show.

`textbook_digits.py` is a stand-alone script (run as `python textbook_digits.py` in a fresh process);
`textbook_loop.py` holds the training and inference loops the in-process benchmarks call.
Neither imports anything from cvdemo.
"""
