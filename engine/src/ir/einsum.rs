//! Einsum equations: parsing (with `...` and implicit outputs) into one
//! letter per dim of every operand and of the output.

use std::collections::BTreeMap;

/// An equation resolved against operand ranks: ellipses expanded into
/// letters of their own (uppercase, which equations do not use for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Einsum {
    pub inputs: Vec<Vec<char>>,
    pub output: Vec<char>,
}

fn terms(s: &str) -> Vec<&str> {
    s.split(',').map(str::trim).collect()
}

/// Parses `equation` for operands of the given ranks.
pub fn parse(equation: &str, ranks: &[usize]) -> Result<Einsum, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let ins = terms(&lhs);
    if ins.len() != ranks.len() {
        return Err(format!(
            "equation '{equation}' has {} operands, {} given",
            ins.len(),
            ranks.len()
        ));
    }
    // How many dims each ellipsis stands for: the most any operand needs.
    let mut ell = 0usize;
    for (t, &r) in ins.iter().zip(ranks) {
        let letters = t.replace("...", "").chars().count();
        if t.contains("...") {
            ell = ell.max(
                r.checked_sub(letters)
                    .ok_or_else(|| format!("operand '{t}' has rank {r}"))?,
            );
        }
    }
    let ell_letters: Vec<char> = (0..ell).map(|i| (b'A' + i as u8) as char).collect();
    let expand = |t: &str, rank: usize| -> Result<Vec<char>, String> {
        let mut v = Vec::new();
        if let Some((a, b)) = t.split_once("...") {
            let named = a.chars().count() + b.chars().count();
            let n = rank
                .checked_sub(named)
                .ok_or_else(|| format!("operand '{t}' has rank {rank}"))?;
            v.extend(a.chars());
            v.extend(&ell_letters[ell - n..]);
            v.extend(b.chars());
        } else {
            v.extend(t.chars());
        }
        if v.iter().any(|c| !c.is_ascii_alphabetic()) {
            return Err(format!("'{t}' is not a term of letters"));
        }
        if v.len() != rank {
            return Err(format!(
                "term '{t}' names {} dims of an operand of rank {rank}",
                v.len()
            ));
        }
        Ok(v)
    };
    let inputs: Vec<Vec<char>> = ins
        .iter()
        .zip(ranks)
        .map(|(t, &r)| expand(t, r))
        .collect::<Result<_, _>>()?;
    let output = match rhs {
        Some(r) => {
            let mut v = Vec::new();
            if let Some((a, b)) = r.split_once("...") {
                v.extend(a.chars());
                v.extend(&ell_letters);
                v.extend(b.chars());
            } else {
                v.extend(r.chars());
            }
            for c in &v {
                if !inputs.iter().any(|i| i.contains(c)) {
                    return Err(format!("output letter '{c}' is not in any operand"));
                }
            }
            v
        }
        None => {
            // Implicit: broadcast dims, then letters used once, alphabetically.
            let mut count: BTreeMap<char, usize> = BTreeMap::new();
            for i in &inputs {
                for &c in i {
                    if c.is_ascii_lowercase() {
                        *count.entry(c).or_default() += 1;
                    }
                }
            }
            let mut v = ell_letters.clone();
            v.extend(count.into_iter().filter(|(_, n)| *n == 1).map(|(c, _)| c));
            v
        }
    };
    Ok(Einsum { inputs, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_implicit_and_ellipsis() {
        let e = parse("ij,jk->ik", &[2, 2]).unwrap();
        assert_eq!(e.output, vec!['i', 'k']);
        let e = parse("ij,jk", &[2, 2]).unwrap();
        assert_eq!(e.output, vec!['i', 'k']);
        let e = parse("...ii->...i", &[4]).unwrap();
        assert_eq!(e.inputs[0], vec!['A', 'B', 'i', 'i']);
        assert_eq!(e.output, vec!['A', 'B', 'i']);
        assert!(parse("ij->k", &[2]).is_err());
        assert!(parse("ij", &[3]).is_err());
    }
}
