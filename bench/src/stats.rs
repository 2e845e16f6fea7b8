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

/// The end of a row's measured window, as an offset from its start (microseconds): its nominal
/// end, or, when no operation that started in the window had ended by then, the end of the first
/// one (`ends`: the end offsets of the operations that started in the window). So every row
/// counts at least one operation, whatever the machine's speed.
pub fn window_end(nominal: u64, ends: impl IntoIterator<Item = u64>) -> u64 {
    ends.into_iter()
        .min()
        .map_or(nominal, |first| first.max(nominal))
}

/// Measures `n` times (at least once) and keeps the run whose `rate` is the median (for an even
/// `n`, the lower of the two middle runs: always a run that happened, never an average), with
/// the rate of every run in the order measured.
pub fn median_run<T>(
    n: usize,
    rate: impl Fn(&T) -> f64,
    mut measure: impl FnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<(T, Vec<f64>)> {
    let mut runs = Vec::with_capacity(n.max(1));
    for i in 0..n.max(1) {
        runs.push(measure(i)?);
    }
    let rates: Vec<f64> = runs.iter().map(&rate).collect();
    let mut ranked: Vec<(f64, T)> = rates.iter().copied().zip(runs).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let middle = ranked.len().saturating_sub(1) / 2;
    let (_, kept) = ranked
        .into_iter()
        .nth(middle)
        .ok_or_else(|| anyhow::anyhow!("no run was made"))?;
    Ok((kept, rates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_extends_to_the_first_operation_only_when_none_ended_in_time() {
        assert_eq!(window_end(300, [120, 250, 400]), 300);
        assert_eq!(window_end(300, [300]), 300);
        assert_eq!(window_end(300, [900, 500, 700]), 500);
        assert_eq!(window_end(300, []), 300);
    }

    #[test]
    fn the_median_run_is_kept_whole() {
        let measured = [30.0, 10.0, 20.0];
        let (kept, rates) =
            median_run(3, |r: &(usize, f64)| r.1, |i| Ok((i, measured[i]))).unwrap();
        assert_eq!(kept, (2, 20.0));
        assert_eq!(rates, measured);
        // even: the lower middle; one: that run
        let (kept, _) = median_run(4, |r: &f64| *r, |i| Ok([4.0, 1.0, 3.0, 2.0][i])).unwrap();
        assert_eq!(kept, 2.0);
        let (kept, rates) = median_run(0, |r: &f64| *r, |_| Ok(7.0)).unwrap();
        assert_eq!((kept, rates), (7.0, vec![7.0]));
    }

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(p50_p99_ms(&mut v), (Some(50.0), Some(99.0)));
        let mut one = vec![2500];
        assert_eq!(p50_p99_ms(&mut one), (Some(2.5), Some(2.5)));
        assert_eq!(p50_p99_ms(&mut []), (None, None));
    }
}
