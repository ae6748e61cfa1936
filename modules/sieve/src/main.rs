//! `sieve`: a compute-heavy tenant. It counts the primes below N with a sieve of
//! Eratosthenes over odd numbers, so its fuel use grows with N (roughly
//! N log log N) and a small fuel grant visibly stops it.
//!
//! Usage: `sieve [N]` (default 1 000 000, at most 200 000 000). It prints the
//! count, the largest prime below N and a checksum (the sum of all primes below
//! N, wrapping), one `key value` pair per line. Exit status 3 on a bad N.
#![forbid(unsafe_code)]

use std::process::ExitCode;

const DEFAULT_LIMIT: u64 = 1_000_000;
/// Keeps the bit set at 12.5 MB, inside the module's 64 MiB memory grant.
const MAX_LIMIT: u64 = 200_000_000;

/// Summary of the primes below a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Primes {
    count: u64,
    largest: Option<u64>,
    sum: u64,
}

/// Sieves odd numbers only: bit `i` stands for `2 * i + 1`, which halves both the
/// memory and the work of the plain sieve.
fn primes_below(limit: u64) -> Primes {
    if limit <= 2 {
        return Primes { count: 0, largest: None, sum: 0 };
    }
    // Odd numbers 1, 3, 5, … below `limit`.
    let odd_count = (limit / 2) as usize;
    let mut composite = vec![0u64; odd_count.div_ceil(64)];
    let mut i = 1usize;
    loop {
        let p = 2 * i as u64 + 1;
        if p * p >= limit {
            break;
        }
        if composite[i / 64] & (1 << (i % 64)) == 0 {
            // Multiples below p * p were crossed out by smaller primes; step by
            // 2p to stay on odd numbers.
            let mut j = (p * p / 2) as usize;
            while j < odd_count {
                composite[j / 64] |= 1 << (j % 64);
                j += p as usize;
            }
        }
        i += 1;
    }
    let mut primes = Primes { count: 1, largest: Some(2), sum: 2 };
    for i in 1..odd_count {
        if composite[i / 64] & (1 << (i % 64)) == 0 {
            let p = 2 * i as u64 + 1;
            primes.count += 1;
            primes.largest = Some(p);
            primes.sum = primes.sum.wrapping_add(p);
        }
    }
    primes
}

fn main() -> ExitCode {
    let limit = match std::env::args().nth(1) {
        None => DEFAULT_LIMIT,
        Some(text) => match text.replace('_', "").parse::<u64>() {
            Ok(n) if n <= MAX_LIMIT => n,
            _ => {
                eprintln!("sieve: N must be a whole number from 0 to {MAX_LIMIT}, not {text:?}");
                return ExitCode::from(3);
            }
        },
    };
    let primes = primes_below(limit);
    println!("below {limit}");
    println!("count {}", primes.count);
    match primes.largest {
        Some(p) => println!("largest {p}"),
        None => println!("largest none"),
    }
    println!("sum {}", primes.sum);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_prime_counts() {
        assert_eq!(primes_below(0).count, 0);
        assert_eq!(primes_below(2).count, 0);
        assert_eq!(primes_below(3), Primes { count: 1, largest: Some(2), sum: 2 });
        assert_eq!(primes_below(10), Primes { count: 4, largest: Some(7), sum: 17 });
        assert_eq!(primes_below(100).count, 25);
        assert_eq!(primes_below(1_000_000).count, 78_498);
        assert_eq!(primes_below(1_000_000).largest, Some(999_983));
    }
}
