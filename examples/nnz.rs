use powergrid::powerflow::{Plan, SolverOptions};
fn main() {
    for name in ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"] {
        let net = powergrid::network::load(format!("networks/{name}.yml")).unwrap();
        let p = Plan::new(&net, SolverOptions::default()).unwrap();
        println!(
            "{name}: n_pq {} branches {} bp nnz {} perm {} bpp nnz {} variant {:?} {:.1}",
            p.n_pq,
            p.branches.len(),
            p.bp.nnz(),
            p.bp.perm.is_some(),
            p.bpp.nnz(),
            p.variant,
            p.psi
        );
    }
}
