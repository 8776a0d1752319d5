a file
