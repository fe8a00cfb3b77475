//! 3MF: a zip holding XML model parts.
//!
//! What is understood: several objects per file, objects made of `components` (with
//! their own transforms, nested), build items with transforms, the model's `unit`
//! attribute, and the production extension's `p:path` references to other model parts
//! (`3D/Objects/object_1.model`, as Bambu Studio and Orca write them). Colours,
//! materials and slicer settings are ignored.
//!
//! Hostile input: members are read through [`Capped`] (zip bombs), `<!DOCTYPE>` is
//! refused outright (entity-expansion bombs need one), component nesting is bounded and
//! triangle indices are checked against the vertex count.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::zipcap::Capped;
use super::{MAX_TRIANGLES, Mesh, MeshBuilder, too_many_triangles};
use crate::error::AnalysisError;

/// The root model part every 3MF must have.
pub const ROOT_MODEL: &str = "3D/3dmodel.model";
/// How deep components may nest (real files use 1–2 levels).
const MAX_DEPTH: usize = 16;
/// How many object instances the build may expand to (real files: a few hundred).
const MAX_INSTANCES: u64 = 100_000;

/// A 3MF affine transform, row-major 4×3 as written in the file: `x' = x·m0 + y·m3 + z·m6 + m9`.
type Transform = [f64; 12];
const IDENTITY: Transform = [1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 0., 0.];

/// One `<object>`: a mesh or a list of components.
#[derive(Debug, Default)]
struct Object {
    vertices: Vec<[f32; 3]>,
    triangles: Vec<[u32; 3]>,
    components: Vec<Component>,
}

#[derive(Debug, Clone)]
struct Component {
    /// The model part holding the object (production extension), or `None` for this part.
    path: Option<String>,
    object: u32,
    transform: Transform,
}

/// One parsed model part: its objects, build items and unit scale to millimetres.
#[derive(Debug, Default)]
struct Part {
    objects: HashMap<u32, Object>,
    items: Vec<Component>,
    scale: f64,
}

/// Opens a 3MF archive and flattens its build into one mesh in millimetres.
pub fn parse<R: Read + Seek>(reader: R) -> Result<Mesh, AnalysisError> {
    Ok(Mesh::merge(parse_items(reader)?))
}

/// Opens a 3MF archive and returns one mesh per build item, in millimetres (the
/// slicer fallback hands them over as separate objects so they can be arranged).
pub fn parse_items<R: Read + Seek>(reader: R) -> Result<Vec<Mesh>, AnalysisError> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| AnalysisError::invalid(format!("damaged 3MF (zip) archive: {e}")))?;
    let mut loader = Loader {
        archive: &mut archive,
        parts: HashMap::new(),
        spent: 0,
        instances: 0,
    };
    let root_name = root_model_name(loader.archive);
    let root = loader.part(&root_name)?;
    let items = root.items.clone();
    let scale = root.scale;
    if items.is_empty() {
        return Err(AnalysisError::invalid(
            "the 3MF has no build items (nothing to print)",
        ));
    }
    let mut meshes = Vec::with_capacity(items.len());
    let mut total = 0u64;
    for item in &items {
        let mut t = item.transform;
        scale_transform(&mut t, scale);
        let mut builder = MeshBuilder::default();
        loader.emit(&root_name, item.object, &t, 0, &mut builder)?;
        total += builder.triangle_count() as u64;
        if total > MAX_TRIANGLES {
            return Err(too_many_triangles(total));
        }
        meshes.push(builder.finish()?);
    }
    Ok(meshes)
}

/// Reads one member of a zip through the bomb caps.
pub fn read_member<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    spent: u64,
) -> Result<Vec<u8>, AnalysisError> {
    let file = archive
        .by_name(name)
        .map_err(|e| AnalysisError::invalid(format!("3MF member {name}: {e}")))?;
    let compressed = file.compressed_size();
    let mut capped = Capped::new(file, name, compressed, spent);
    let mut out = Vec::new();
    capped
        .read_to_end(&mut out)
        .map_err(|e| AnalysisError::invalid(format!("3MF member {name}: {e}")))?;
    Ok(out)
}

struct Loader<'a, R: Read + Seek> {
    archive: &'a mut zip::ZipArchive<R>,
    parts: HashMap<String, Part>,
    spent: u64,
    instances: u64,
}

impl<R: Read + Seek> Loader<'_, R> {
    /// Parses a model part once and keeps it.
    fn part(&mut self, name: &str) -> Result<&Part, AnalysisError> {
        if !self.parts.contains_key(name) {
            let missing = || {
                AnalysisError::invalid(format!("the 3MF has no {name} (a referenced model part)"))
            };
            let member = member_name(self.archive, name).ok_or_else(missing)?;
            let file = self.archive.by_name(&member).map_err(|_| missing())?;
            let compressed = file.compressed_size();
            let mut capped = Capped::new(file, name, compressed, self.spent);
            let part = parse_part(BufReader::new(&mut capped), name)?;
            self.spent += capped.produced();
            self.parts.insert(name.to_string(), part);
        }
        self.parts
            .get(name)
            .ok_or_else(|| AnalysisError::invalid(format!("3MF part {name} vanished")))
    }

    /// Adds object `id` of part `name`, transformed by `t`, to the builder.
    fn emit(
        &mut self,
        name: &str,
        id: u32,
        t: &Transform,
        depth: usize,
        out: &mut MeshBuilder,
    ) -> Result<(), AnalysisError> {
        if depth > MAX_DEPTH {
            return Err(AnalysisError::invalid(
                "3MF components nest too deeply (a cycle or a hostile file)",
            ));
        }
        // Nested components multiply: 1,000 × 1,000 × 1,000 empty instances cost no
        // triangles but would take hours to walk.
        self.instances += 1;
        if self.instances > MAX_INSTANCES {
            return Err(AnalysisError::invalid(format!(
                "3MF components expand to more than {} object instances (a hostile file?)",
                crate::error::thousands(MAX_INSTANCES)
            )));
        }
        let object = self.part(name)?.objects.get(&id).ok_or_else(|| {
            AnalysisError::invalid(format!(
                "3MF refers to object {id}, which {name} does not define"
            ))
        })?;
        let total = out.triangle_count() as u64 + object.triangles.len() as u64;
        if total > MAX_TRIANGLES {
            return Err(too_many_triangles(total));
        }
        let ids: Vec<u32> = object
            .vertices
            .iter()
            .map(|v| out.vertex(apply(t, v)))
            .collect::<Result<_, _>>()?;
        for tri in &object.triangles {
            out.triangle([
                ids[tri[0] as usize],
                ids[tri[1] as usize],
                ids[tri[2] as usize],
            ])?;
        }
        let count = object.components.len();
        for i in 0..count {
            // One component cloned at a time: the list itself may be long.
            let c = self.part(name)?.objects[&id].components[i].clone();
            let child = compose(&c.transform, t);
            let part = c
                .path
                .as_deref()
                .map(strip_slash)
                .unwrap_or(name)
                .to_string();
            self.emit(&part, c.object, &child, depth + 1, out)?;
        }
        Ok(())
    }
}

/// The archive's name for `wanted`: exact, else ignoring case (zip names are
/// case-sensitive, Windows tools that write 3MF are not).
fn member_name<R: Read + Seek>(archive: &zip::ZipArchive<R>, wanted: &str) -> Option<String> {
    if archive.index_for_name(wanted).is_some() {
        return Some(wanted.to_string());
    }
    archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.eq_ignore_ascii_case(wanted))
        .map(|n| n.into_owned())
}

/// The root model part named by `_rels/.rels` (the 3MF way), else [`ROOT_MODEL`].
fn root_model_name<R: Read + Seek>(archive: &mut zip::ZipArchive<R>) -> String {
    let rels = member_name(archive, "_rels/.rels")
        .and_then(|name| read_member(archive, &name, 0).ok())
        .unwrap_or_default();
    let mut reader = Reader::from_reader(rels.as_slice());
    let mut buf = Vec::new();
    while let Ok(event) = reader.read_event_into(&mut buf) {
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                let Ok(attrs) = Attrs::of(&e) else { continue };
                let is_model = attrs.get("Type").is_some_and(|t| t.ends_with("/3dmodel"));
                if let Some(target) = attrs.get("Target").filter(|_| is_model) {
                    return strip_slash(target).to_string();
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    ROOT_MODEL.to_string()
}

fn strip_slash(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path)
}

fn apply(t: &Transform, v: &[f32; 3]) -> [f32; 3] {
    let (x, y, z) = (f64::from(v[0]), f64::from(v[1]), f64::from(v[2]));
    let mut out = [0f32; 3];
    for (a, o) in out.iter_mut().enumerate() {
        *o = (x * t[a] + y * t[3 + a] + z * t[6 + a] + t[9 + a]) as f32;
    }
    out
}

/// `first` applied, then `then`: the component's transform inside its parent's.
fn compose(first: &Transform, then: &Transform) -> Transform {
    let mut out = [0.0; 12];
    for row in 0..4 {
        for col in 0..3 {
            let mut sum = if row == 3 { then[9 + col] } else { 0.0 };
            for k in 0..3 {
                sum += first[row * 3 + k] * then[k * 3 + col];
            }
            out[row * 3 + col] = sum;
        }
    }
    out
}

fn scale_transform(t: &mut Transform, s: f64) {
    for v in t.iter_mut() {
        *v *= s;
    }
}

/// Millimetres per unit for the 3MF `unit` attribute.
fn unit_scale(unit: &str) -> Option<f64> {
    Some(match unit {
        "micron" => 0.001,
        "millimeter" => 1.0,
        "centimeter" => 10.0,
        "inch" => 25.4,
        "foot" => 304.8,
        "meter" => 1000.0,
        _ => return None,
    })
}

/// Streams one model part's XML into a [`Part`].
fn parse_part(input: impl std::io::BufRead, name: &str) -> Result<Part, AnalysisError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut part = Part {
        scale: 1.0,
        ..Part::default()
    };
    let mut current: Option<(u32, Object)> = None;
    let xml_err = |e: &dyn std::fmt::Display| AnalysisError::invalid(format!("3MF {name}: {e}"));
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| xml_err(&e))?;
        match event {
            Event::DocType(_) => {
                return Err(xml_err(
                    &"a DOCTYPE is not allowed in 3MF (entity-expansion bombs need one)",
                ));
            }
            Event::Start(e) | Event::Empty(e) => {
                element(&e, &mut part, &mut current).map_err(|m| xml_err(&m))?;
            }
            Event::End(e) if e.local_name().as_ref() == "object" => {
                if let Some((id, object)) = current.take() {
                    part.objects.insert(id, object);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(part)
}

/// Handles one start (or empty) element.
fn element(
    e: &BytesStart<'_>,
    part: &mut Part,
    current: &mut Option<(u32, Object)>,
) -> Result<(), String> {
    let attrs = Attrs::of(e)?;
    match e.local_name().as_ref() {
        "model" => {
            if let Some(unit) = attrs.get("unit") {
                part.scale = unit_scale(unit).ok_or_else(|| format!("unknown unit {unit:?}"))?;
            }
        }
        "object" => *current = Some((attrs.id("id")?, Object::default())),
        "vertex" => {
            let object = &mut current.as_mut().ok_or("vertex outside an object")?.1;
            if object.vertices.len() as u64 >= 3 * MAX_TRIANGLES {
                return Err("too many vertices".into());
            }
            object
                .vertices
                .push([attrs.num("x")?, attrs.num("y")?, attrs.num("z")?]);
        }
        "triangle" => {
            let object = &mut current.as_mut().ok_or("triangle outside an object")?.1;
            let t = [attrs.id("v1")?, attrs.id("v2")?, attrs.id("v3")?];
            if t.iter().any(|&v| v as usize >= object.vertices.len()) {
                return Err(format!(
                    "triangle {t:?} refers to a vertex beyond the {} defined",
                    object.vertices.len()
                ));
            }
            if object.triangles.len() as u64 >= MAX_TRIANGLES {
                return Err("too many triangles".into());
            }
            object.triangles.push(t);
        }
        "component" => {
            let object = &mut current.as_mut().ok_or("component outside an object")?.1;
            object.components.push(attrs.component()?);
        }
        "item" => part.items.push(attrs.component()?),
        _ => {}
    }
    Ok(())
}

/// An element's attributes by local name (so `p:path` is `path`).
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn of(e: &BytesStart<'_>) -> Result<Self, String> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| err.to_string())?;
            out.push((a.key.local_name().as_ref().to_string(), a.value.to_string()));
        }
        Ok(Attrs(out))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("missing attribute {key}"))
    }

    fn num(&self, key: &str) -> Result<f32, String> {
        let text = self.text(key)?;
        let v: f32 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number"))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!(
                "a vertex coordinate is not a finite number ({text})"
            ))
        }
    }

    fn id(&self, key: &str) -> Result<u32, String> {
        let text = self.text(key)?;
        text.trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an index"))
    }

    fn component(&self) -> Result<Component, String> {
        let transform = match self.get("transform") {
            Some(_) => parse_transform(self.text("transform")?)?,
            None => IDENTITY,
        };
        Ok(Component {
            path: self.get("path").map(str::to_string),
            object: self.id("objectid")?,
            transform,
        })
    }
}

fn parse_transform(text: &str) -> Result<Transform, String> {
    let values: Vec<f64> = text
        .split_ascii_whitespace()
        .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("bad transform {text:?}"))?;
    values
        .try_into()
        .map_err(|_| format!("a transform needs 12 numbers: {text:?}"))
}

#[cfg(test)]
#[path = "threemf_tests.rs"]
mod tests;
