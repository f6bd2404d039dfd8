/*
 * histo.c - log-scale duration bins (see histo.h).
 */
#include "histo.h"

int pc_histo_bin(int64_t ns)
{
    if (ns < 128) return ns < 0 ? 0 : (int)ns;
    int e = 63 - __builtin_clzll((unsigned long long)ns); /* 7 .. 62 */
    int m = (int)(ns >> (e - 6));                         /* 64 .. 127 */
    return (e - 6) * 64 + m;
}

int64_t pc_histo_value(int bin)
{
    if (bin < 128) return bin < 0 ? 0 : bin;
    int e = bin / 64 + 5;
    int64_t m = bin % 64 + 64, width = (int64_t)1 << (e - 6);
    return m * width + width / 2;
}

int64_t pc_histo_round(int64_t ns)
{
    return pc_histo_value(pc_histo_bin(ns));
}
