using Ferry.Bench;

return KernelBench.Run(args);
