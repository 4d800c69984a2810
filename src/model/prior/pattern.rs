//! The codebook delay pattern (MusicGen's idea, with per-level delays).
//!
//! One transformer step writes one code of every level, but level `k` is `delays[k]` frames
//! behind: at step `s` the model predicts level `k` of frame `s - delays[k]`, so the finer levels
//! of a frame are written after (and conditioned on) its coarser ones. Cantor's default is
//! `[0, 1, 1, 1, 1, 1, 1, 1]`: the first level leads and the seven residual levels follow one
//! frame later, in parallel. That keeps one step per frame (the CPU budget) and adds only one
//! frame (13 ms) of latency, where MusicGen's full staircase would add seven.

/// Token fed where a delayed level has no code yet (stream start, after a reset).
pub fn bos(codebook_size: usize) -> u32 {
    codebook_size as u32
}

/// Training pairs for `steps` steps from a clip's codes (`codes[frame][level]`), starting at
/// frame `start`. Returns (inputs, targets), each `[steps][levels]`; an input is the previous
/// step's target (BOS before the crop starts) and a target of `None` is not scored.
pub fn training_pairs(codes: &[Vec<u32>], start: usize, steps: usize, delays: &[usize], codebook_size: usize) -> (Vec<Vec<u32>>, Vec<Vec<Option<u32>>>) {
    let levels = delays.len();
    let target = |s: usize, k: usize| -> Option<u32> {
        // Frame start + s - delay, if it is inside the crop and the clip.
        let rel = s.checked_sub(delays[k])?;
        codes.get(start + rel).map(|f| f[k])
    };
    let mut inputs = Vec::with_capacity(steps);
    let mut targets = Vec::with_capacity(steps);
    for s in 0..steps {
        let input = (0..levels)
            .map(|k| if s == 0 { bos(codebook_size) } else { target(s - 1, k).unwrap_or(bos(codebook_size)) })
            .collect();
        inputs.push(input);
        targets.push((0..levels).map(|k| target(s, k)).collect());
    }
    (inputs, targets)
}

/// Reassembles whole frames from the per-step outputs of a delayed stream.
pub struct FrameAssembler {
    delays: Vec<usize>,
    max_delay: usize,
    /// Recent steps' outputs, newest last (at most max_delay + 1 kept).
    history: std::collections::VecDeque<Vec<u32>>,
    steps: u64,
}

impl FrameAssembler {
    pub fn new(delays: &[usize]) -> Self {
        let max_delay = delays.iter().copied().max().unwrap_or(0);
        Self { delays: delays.to_vec(), max_delay, history: Default::default(), steps: 0 }
    }

    pub fn reset(&mut self) {
        self.history.clear();
        self.steps = 0;
    }

    /// Frames of latency the pattern adds.
    pub fn latency(&self) -> usize {
        self.max_delay
    }

    /// Record one step's outputs; returns the frame that this step completed, if any.
    pub fn push(&mut self, step_out: &[u32]) -> Option<Vec<u32>> {
        self.history.push_back(step_out.to_vec());
        if self.history.len() > self.max_delay + 1 {
            self.history.pop_front();
        }
        self.steps += 1;
        if self.steps <= self.max_delay as u64 {
            return None;
        }
        // Frame f = step - max_delay; its level k came out at step f + delays[k].
        let newest = self.history.len() - 1;
        Some(self.delays.iter().enumerate().map(|(k, &d)| self.history[newest - (self.max_delay - d)][k]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_targets_and_generated_frames_line_up() {
        let delays = [0, 1, 1, 2];
        let codes: Vec<Vec<u32>> = (0..10).map(|f| (0..4).map(|k| (f * 10 + k) as u32).collect()).collect();
        let (inputs, targets) = training_pairs(&codes, 3, 6, &delays, 100);
        // Step 0 predicts level 0 of frame 3; levels 1-3 have nothing yet.
        assert_eq!(targets[0], vec![Some(30), None, None, None]);
        assert_eq!(targets[2], vec![Some(50), Some(41), Some(42), Some(33)]);
        assert_eq!(inputs[0], vec![100; 4]);
        assert_eq!(inputs[3], vec![50, 41, 42, 33]);
        // Feeding the targets through the assembler gives back the clip's frames in order.
        let mut asm = FrameAssembler::new(&delays);
        let mut frames = Vec::new();
        for t in &targets {
            let out: Vec<u32> = t.iter().map(|v| v.unwrap_or(100)).collect();
            frames.extend(asm.push(&out));
        }
        assert_eq!(frames, codes[3..7].to_vec());
        assert_eq!(asm.latency(), 2);
    }
}
