
print("hello world!")
