from . import client_read, resync, simulator_read

simulator_read.main([])
client_read.main([])
resync.main([])
