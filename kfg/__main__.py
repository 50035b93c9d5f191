from kfg.cli import console

console()
