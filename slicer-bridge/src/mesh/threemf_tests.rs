//! 3MF reader tests on archives built in memory.

use std::io::{Cursor, Write};

use super::*;

fn archive(members: &[(&str, &[u8])]) -> Cursor<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        zip.start_file(*name, opts).expect("start");
        zip.write_all(data).expect("write");
    }
    let mut cursor = zip.finish().expect("finish");
    cursor.set_position(0);
    cursor
}

const TETRA: &str = r#"<mesh><vertices><vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/>
<vertex x="0" y="1" z="0"/><vertex x="0" y="0" z="1"/></vertices><triangles>
<triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/><triangle v1="0" v2="3" v3="2"/>
<triangle v1="1" v2="2" v3="3"/></triangles></mesh>"#;

#[test]
fn units_items_and_transforms() {
    let xml = format!(
        r#"<?xml version="1.0"?><model unit="centimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
<resources><object id="1" type="model">{TETRA}</object></resources>
<build><item objectid="1" transform="2 0 0 0 2 0 0 0 2 5 0 0"/><item objectid="1"/></build></model>"#
    );
    let mesh = parse(archive(&[(ROOT_MODEL, xml.as_bytes())])).expect("3mf");
    assert_eq!(mesh.triangles.len(), 8);
    let (lo, hi) = mesh.bounds().expect("bounds");
    // Scaled ×2, moved 5 cm, then centimetres → millimetres.
    assert_eq!(lo, [0.0, 0.0, 0.0]);
    assert_eq!(hi, [70.0, 20.0, 20.0]);
}

#[test]
fn production_extension_paths_and_nested_components() {
    let root = r#"<model unit="millimeter" xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06">
<resources><object id="2"><components><component p:path="/3D/Objects/object_1.model" objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0 10"/></components></object>
<object id="3"><components><component objectid="2" transform="1 0 0 0 1 0 0 0 1 100 0 0"/></components></object></resources>
<build><item objectid="3"/></build></model>"#;
    let part = format!(
        r#"<model unit="millimeter"><resources><object id="1">{TETRA}</object></resources></model>"#
    );
    let mesh = parse(archive(&[
        (ROOT_MODEL, root.as_bytes()),
        ("3D/Objects/object_1.model", part.as_bytes()),
    ]))
    .expect("3mf");
    let (lo, hi) = mesh.bounds().expect("bounds");
    assert_eq!(lo, [100.0, 0.0, 10.0]);
    assert_eq!(hi, [101.0, 1.0, 11.0]);
}

#[test]
fn doctype_entity_bomb_is_refused() {
    let xml = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<model><resources><object id="1"><mesh><vertices><vertex x="&lol2;" y="0" z="0"/></vertices></mesh></object></resources></model>"#;
    let err = parse(archive(&[(ROOT_MODEL, xml)])).expect_err("doctype");
    assert!(err.to_string().contains("DOCTYPE"), "{err}");
}

#[test]
fn zip_bomb_is_stopped_while_inflating() {
    let zeros = vec![b' '; 48 * 1024 * 1024];
    let started = std::time::Instant::now();
    let err = parse(archive(&[(ROOT_MODEL, &zeros)])).expect_err("bomb");
    assert!(err.to_string().contains("zip bomb"), "{err}");
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn broken_archives_and_references() {
    let err = parse(Cursor::new(b"PK\x03\x04garbage".to_vec())).expect_err("zip");
    assert!(err.to_string().contains("damaged 3MF"), "{err}");
    let err = parse(archive(&[("other.txt", b"x")])).expect_err("no model");
    assert!(err.to_string().contains("3D/3dmodel.model"), "{err}");
    let xml = br#"<model><resources><object id="1"><mesh><vertices><vertex x="0" y="0" z="0"/></vertices>
<triangles><triangle v1="0" v2="0" v3="7"/></triangles></mesh></object></resources><build><item objectid="1"/></build></model>"#;
    let err = parse(archive(&[(ROOT_MODEL, xml)])).expect_err("index");
    assert!(err.to_string().contains("beyond"), "{err}");
    let xml = br#"<model><resources><object id="1"><mesh><vertices><vertex x="NaN" y="0" z="0"/></vertices></mesh></object></resources></model>"#;
    let err = parse(archive(&[(ROOT_MODEL, xml)])).expect_err("nan");
    assert!(err.to_string().contains("finite"), "{err}");
    let xml = br#"<model><resources><object id="1"><components><component objectid="1"/></components></object></resources><build><item objectid="1"/></build></model>"#;
    let err = parse(archive(&[(ROOT_MODEL, xml)])).expect_err("cycle");
    assert!(err.to_string().contains("nest"), "{err}");
}

#[test]
fn component_fan_out_bomb_is_refused_quickly() {
    let mut xml = String::from(
        r#"<model><resources><object id="1"><mesh><vertices/><triangles/></mesh></object>"#,
    );
    for level in 2..=5 {
        xml.push_str(&format!(r#"<object id="{level}"><components>"#));
        for _ in 0..1000 {
            xml.push_str(&format!(r#"<component objectid="{}"/>"#, level - 1));
        }
        xml.push_str("</components></object>");
    }
    xml.push_str(r#"</resources><build><item objectid="5"/></build></model>"#);
    let started = std::time::Instant::now();
    let err = parse(archive(&[(ROOT_MODEL, xml.as_bytes())])).expect_err("fan-out");
    assert!(err.to_string().contains("instances"), "{err}");
    assert!(started.elapsed().as_secs() < 20);
}

#[test]
fn root_part_from_rels_and_names_in_any_case() {
    let rels = br#"<?xml version="1.0"?><Relationships><Relationship Target="/3D/Model.model" Id="r0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>"#;
    let xml = format!(
        r#"<model><resources><object id="1">{TETRA}</object></resources><build><item objectid="1"/></build></model>"#
    );
    let mesh = parse(archive(&[
        ("_rels/.rels", rels),
        ("3d/model.MODEL", xml.as_bytes()),
    ]))
    .expect("3mf");
    assert_eq!(mesh.triangles.len(), 4);
}
