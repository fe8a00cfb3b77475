//! Every corpus model converts to a valid GLB and gets a thumbnail.

mod common;

use slicer_bridge::{AnalysisError, convert_to_glb, render_thumbnail};

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let file = std::fs::File::open(path).expect("png");
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    (reader.info().width, reader.info().height)
}

/// The thumbnail each corpus project carries (README: Shape-Box and the Bambu project).
fn embedded_member(name: &str) -> Option<&'static str> {
    match name {
        "Shape-Box.3mf" => Some("Metadata/thumbnail.png"),
        "bambu-2-plates.3mf" => Some("Metadata/plate_1.png"),
        _ => None,
    }
}

fn zip_member(path: &std::path::Path, member: &str) -> Vec<u8> {
    let file = std::fs::File::open(path).expect("open");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut out = Vec::new();
    let mut entry = archive.by_name(member).expect("member");
    std::io::Read::read_to_end(&mut entry, &mut out).expect("read");
    out
}

#[test]
fn every_model_converts_to_glb_and_thumbnail() {
    let out = common::scratch("preview");
    for path in common::files("models") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let glb = out.join(format!("{name}.glb"));
        let stats = convert_to_glb(&path, &glb).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = std::fs::read(&glb).expect("glb written");
        assert_eq!(bytes.len() as u64, stats.bytes);
        let gltf = gltf::Gltf::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (mut vertices, mut indices) = (0u64, 0u64);
        for prim in gltf
            .meshes()
            .flat_map(|m| m.primitives().collect::<Vec<_>>())
        {
            let positions = prim.get(&gltf::Semantic::Positions).expect("positions");
            assert!(
                prim.get(&gltf::Semantic::Normals).is_some(),
                "{name}: normals"
            );
            vertices += positions.count() as u64;
            indices += prim.indices().expect("indices").count() as u64;
        }
        assert_eq!(vertices, stats.vertices, "{name}");
        assert_eq!(indices, stats.triangles * 3, "{name}");
        // Deduplicated: far fewer vertices than triangle corners.
        assert!(stats.vertices < stats.triangles * 2, "{name}: {stats:?}");

        let png = out.join(format!("{name}.png"));
        render_thumbnail(&path, &png, 320).unwrap_or_else(|e| panic!("{name}: {e}"));
        match embedded_member(&name) {
            Some(member) => {
                let expected = zip_member(&path, member);
                let written = std::fs::read(&png).expect("png");
                assert!(written == expected, "{name}: {member} not used");
            }
            None => assert_eq!(png_size(&png), (320, 320), "{name}"),
        }
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn benchy_glb_is_vertex_merged_and_small() {
    let out = common::scratch("benchy-glb");
    let glb = out.join("benchy.glb");
    let stats = convert_to_glb(&common::corpus().join("models/3DBenchy.stl"), &glb).expect("glb");
    assert_eq!(stats.triangles, 225_154);
    // assimp's per-face-normal soup is 17.9 MB; merged, ~113,000 vertices × 24 bytes
    // (position + normal) plus 225,154 × 6 bytes of u16 indices make about 4.1 MB.
    assert!(stats.vertices < 120_000, "{stats:?}");
    assert!(stats.bytes < 4_300_000, "{stats:?}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn gcode_thumbnails_are_embedded_or_drawn() {
    let out = common::scratch("gcode-thumb");
    let png = out.join("t.png");
    let gcode =
        common::corpus().join("gcode/testfile_fdm-monster_prusaslicer281_thumbnails-only.gcode");
    render_thumbnail(&gcode, &png, 512).expect("embedded");
    assert_eq!(png_size(&png), (640, 480), "the largest block wins");
    for path in common::files("gcode") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.contains("thumbnails-only") || name.contains("-x8_") {
            continue; // embedded (above); 66 MB (drawn the same way, too slow unoptimised)
        }
        let png = out.join(format!("{name}.png"));
        render_thumbnail(&path, &png, 256).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(png_size(&png), (256, 256), "{name}");
    }
    let plain = common::corpus().join("gcode/20mm-xyz-cube.stl_cura413-ender3-0.20.gcode");
    let err = convert_to_glb(&plain, &out.join("x.glb")).expect_err("no mesh in G-code");
    assert!(matches!(err, AnalysisError::Unsupported { .. }), "{err}");
    std::fs::remove_dir_all(&out).ok();
}
