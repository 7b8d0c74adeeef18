"""Media I/O: decoding video and audio, still images, writing media, file names as the file system has them."""
