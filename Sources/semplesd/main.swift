print("semplesd")
