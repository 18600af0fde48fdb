print("semples")
