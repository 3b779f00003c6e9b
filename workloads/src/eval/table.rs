//! A result table and how it is written: `ID.md` (title, caption, the
//! table, notes, the comparison with the paper, provenance) and `ID.csv`
//! (provenance as `#` comment lines, then a header and one line per row).
//! The Markdown may lay the same data out differently (e.g. wide instead of
//! long) through `md_columns`/`md_rows`.

use super::machine::Provenance;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Table {
    /// File stem: `ID.md`, `ID.csv`.
    pub id: String,
    pub title: String,
    /// What the table shows and how it was measured.
    pub caption: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Markdown layout, when it differs from the CSV's.
    pub md_columns: Vec<String>,
    pub md_rows: Vec<Vec<String>>,
    /// Things a reader must know (configurations not run, and why).
    pub notes: Vec<String>,
    /// Measured figures against the paper's, generated from the rows.
    pub comparison: Vec<String>,
    /// The seeds the rows came from.
    pub seeds: String,
}

impl Table {
    pub fn new(id: &str, title: &str, columns: &[&str]) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len(), "row width in {}", self.id);
        self.rows.push(row);
    }

    /// The Markdown table alone (the data as a reader sees it).
    pub fn markdown_grid(&self) -> String {
        let (cols, rows) = if self.md_columns.is_empty() {
            (&self.columns, &self.rows)
        } else {
            (&self.md_columns, &self.md_rows)
        };
        let mut s = String::new();
        if rows.is_empty() {
            return "*No rows: nothing in this table could run (see the notes).*\n".into();
        }
        s.push_str(&format!("| {} |\n", cols.join(" | ")));
        s.push_str(&format!("|{}\n", "---|".repeat(cols.len())));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        s
    }

    pub fn markdown(&self, prov: &Provenance) -> String {
        let mut s = format!("# {}\n\n{}\n\n", self.title, self.caption);
        s.push_str(&self.markdown_grid());
        if !self.notes.is_empty() {
            s.push_str("\nNotes:\n\n");
            for n in &self.notes {
                s.push_str(&format!("- {n}\n"));
            }
        }
        if !self.comparison.is_empty() {
            s.push_str("\nCompared with the paper (generated from the rows above):\n\n");
            for c in &self.comparison {
                s.push_str(&format!("- {c}\n"));
            }
        }
        s.push_str(&format!(
            "\nData: [`{}.csv`]({}.csv). Produced by:\n\n",
            self.id, self.id
        ));
        for l in prov.lines(&self.seeds) {
            s.push_str(&format!("- {l}\n"));
        }
        s
    }

    pub fn csv(&self, prov: &Provenance) -> String {
        let mut s = String::new();
        for l in prov.lines(&self.seeds) {
            s.push_str(&format!("# {}\n", l.replace('`', "")));
        }
        s.push_str(&csv_line(&self.columns));
        for r in &self.rows {
            s.push_str(&csv_line(r));
        }
        s
    }

    pub fn write(&self, out: &Path, prov: &Provenance) -> Result<(), String> {
        let w = |name: String, body: String| {
            let p = out.join(name);
            std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))
        };
        w(format!("{}.md", self.id), self.markdown(prov))?;
        w(format!("{}.csv", self.id), self.csv(prov))
    }
}

/// One CSV record (RFC 4180 quoting where needed).
pub fn csv_line(cells: &[String]) -> String {
    let q: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    format!("{}\n", q.join(","))
}

/// Parse CSV written by [`Table::csv`]: comment lines skipped, quoted
/// fields unquoted. Returns the header and the records.
pub fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', true) => quoted = false,
                ('"', false) if cur.is_empty() => quoted = true,
                (',', false) => fields.push(std::mem::take(&mut cur)),
                (c, _) => cur.push(c),
            }
        }
        if quoted {
            return Err(format!("line {}: unterminated quote", n + 1));
        }
        fields.push(cur);
        records.push(fields);
    }
    let mut it = records.into_iter();
    let header = it.next().ok_or("no header")?;
    let rows: Vec<Vec<String>> = it.collect();
    if let Some(bad) = rows.iter().position(|r| r.len() != header.len()) {
        return Err(format!(
            "record {} has {} fields, header {}",
            bad + 1,
            rows[bad].len(),
            header.len()
        ));
    }
    Ok((header, rows))
}

/// "1.03x".
pub fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "n/a".into()
    }
}

/// Seeds as compact ranges: "1-15, 40".
pub fn seed_ranges(seeds: &[u64]) -> String {
    let mut v = seeds.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let mut t = Table::new("t", "T", &["a", "b"]);
        t.push(vec!["x, y".into(), "say \"hi\"".into()]);
        t.push(vec!["1".into(), "".into()]);
        let prov = Provenance {
            command: "evaluate --quick".into(),
            date: "d".into(),
            machine: "m".into(),
            revision: "r".into(),
        };
        let (h, rows) = parse_csv(&t.csv(&prov)).unwrap();
        assert_eq!(h, vec!["a", "b"]);
        assert_eq!(rows, t.rows);
        assert!(t.markdown(&prov).contains("| x, y | say \"hi\" |"));
    }

    #[test]
    fn ranges() {
        assert_eq!(seed_ranges(&[3, 1, 2, 7, 9, 10]), "1-3 7 9-10");
        assert_eq!(seed_ranges(&[]), "");
    }
}
