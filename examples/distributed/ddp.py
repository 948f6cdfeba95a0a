"""All-reduce one number per process with torch.distributed: started by torchrun on every
node, each process adds its rank + 1, and rank 0 writes the sum to ./outputs."""

import json
import os
import socket

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print(f"rank {rank} of {world} on {socket.gethostname()}: sum {value.item():g}", flush=True)
if rank == 0:
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/result.json", "w") as fh:
        json.dump({"world_size": world, "sum": value.item()}, fh)
dist.destroy_process_group()
