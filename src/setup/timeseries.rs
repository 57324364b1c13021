//! Hourly time series: a CSV whose first column is a timestamp and whose other
//! columns are named series (`load:<AREA>`, `solar:<ZONE>`, `wind:<ZONE>`,
//! `price:<NODE>`). Only the columns a setup asks for are kept.

use crate::error::{Error, Result};
use std::path::Path;

/// Selected columns of an hourly CSV, column-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    /// Column names, in the order asked for.
    pub names: Vec<String>,
    /// `columns[k][hour]`.
    pub columns: Vec<Vec<f64>>,
    /// Number of hourly rows.
    pub hours: usize,
}

impl TimeSeries {
    /// Read the columns `wanted` from the CSV at `path`. A missing column, a
    /// non-numeric or non-finite value is an error naming the file, column and line.
    pub fn read(path: &Path, wanted: &[String]) -> Result<TimeSeries> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(|e| Error::parse(path, e))?;
        let header = rdr.headers().map_err(|e| Error::parse(path, e))?.clone();
        let mut idx = Vec::with_capacity(wanted.len());
        for w in wanted {
            match header.iter().position(|h| h == w) {
                Some(i) => idx.push(i),
                None => {
                    return Err(Error::parse(
                        path,
                        format!(
                            "missing column {w:?} (the setup uses it); the file has {} columns",
                            header.len()
                        ),
                    ))
                }
            }
        }
        let mut columns = vec![Vec::new(); wanted.len()];
        for (row, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| Error::parse(path, e))?;
            for (k, &i) in idx.iter().enumerate() {
                let field = rec.get(i).unwrap_or("");
                let v: f64 = field.trim().parse().map_err(|_| {
                    Error::parse(
                        path,
                        format!(
                            "line {}: column {:?}: {field:?} is not a number",
                            row + 2,
                            wanted[k]
                        ),
                    )
                })?;
                if !v.is_finite() {
                    return Err(Error::parse(
                        path,
                        format!("line {}: column {:?} is {v}", row + 2, wanted[k]),
                    ));
                }
                columns[k].push(v);
            }
        }
        let hours = columns.first().map_or(0, |c| c.len());
        if hours == 0 {
            return Err(Error::parse(path, "the time series has no rows"));
        }
        Ok(TimeSeries {
            names: wanted.to_vec(),
            columns,
            hours,
        })
    }

    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Value of column `k` at `hour`.
    #[inline]
    pub fn at(&self, k: usize, hour: usize) -> f64 {
        self.columns[k][hour]
    }
}
