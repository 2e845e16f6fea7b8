//! Latency percentiles from recorded samples (microseconds). A run records at most a few
//! hundred thousand samples, so sorting them is cheaper and simpler than a histogram.

/// p50 and p99 in milliseconds (`None` without samples).
pub fn p50_p99_ms(samples: &mut [u32]) -> (Option<f64>, Option<f64>) {
    if samples.is_empty() {
        return (None, None);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        // nearest-rank percentile
        let rank = (q * samples.len() as f64).ceil() as usize;
        samples
            .get(rank.clamp(1, samples.len()) - 1)
            .map(|&us| f64::from(us) / 1000.0)
    };
    (at(0.50), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(p50_p99_ms(&mut v), (Some(50.0), Some(99.0)));
        let mut one = vec![2500];
        assert_eq!(p50_p99_ms(&mut one), (Some(2.5), Some(2.5)));
        assert_eq!(p50_p99_ms(&mut []), (None, None));
    }
}
