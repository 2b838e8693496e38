#!/usr/bin/env python3
"""Known-answer vectors for the paillier crate, computed independently of it.

Textbook Paillier with plain Python integers: c = g^m * r^n mod n^2 with
g = n + 1 computed by pow() (not the 1 + m*n shortcut the crate uses), and
decryption by lambda = lcm(p-1, q-1), mu = L(g^lambda mod n^2)^-1 mod n.
Fixed primes (the first primes after fixed 128-bit seeds, found with a
deterministic Miller-Rabin) and fixed nonces, so the file is reproducible:

    python3 make_kat.py > kat.txt
"""
import math

def is_prime(n):
    if n < 2: return False
    for p in [2,3,5,7,11,13,17,19,23,29,31,37]:
        if n % p == 0: return n == p
    d, s = n - 1, 0
    while d % 2 == 0: d //= 2; s += 1
    for a in [2,3,5,7,11,13,17,19,23,29,31,37,41]:
        x = pow(a, d, n)
        if x in (1, n - 1): continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1: break
        else: return False
    return True

def next_prime(x):
    while not is_prime(x): x += 1
    return x

p = next_prime(0xc0ffee_0000_0000_0000_0000_0000_0001 | (3 << 126))
q = next_prime(0xbadd_cafe_0000_0000_0000_0000_0000_0001 | (3 << 126))
n = p * q; nn = n * n; g = n + 1
lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
L = lambda x: (x - 1) // n
mu = pow(L(pow(g, lam, nn)), -1, n)
print(f"p {p:x}")
print(f"q {q:x}")
print(f"n {n:x}")
half = (n - 1) // 2
ms = [0, 1, -1, 2, -2, 42, -42, 255, 123456789, half, -half, half - 1, -(half - 1)]
for i, m in enumerate(ms):
    r = next_prime(0x1234567 * (i + 1) ** 7 + 0xabcdef) % n
    assert math.gcd(r, n) == 1
    c = pow(g, m % n, nn) * pow(r, n, nn) % nn
    dec = L(pow(c, lam, nn)) * mu % n
    dec = dec - n if dec > half else dec
    assert dec == m
    print(f"kat {m} {r:x} {c:x}")
