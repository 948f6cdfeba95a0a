"""Our stand-in for the example's hello.py."""

print("Hello Python World")
