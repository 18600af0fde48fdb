import Foundation
import SemplesEngine

/// Draws VOC-format synthetic images: a few object classes on textured backgrounds, several objects
/// per image, each class nearly always seen on "its" background (the co-occurrence that makes a
/// classifier's CAMs spill onto the background, the failure SemPLeS targets).
/// Class indices are VOC's (0-based, 20 classes) so the files drop into VOC tooling unchanged.
public struct SyntheticScenes {
    public enum Background: Int, CaseIterable {
        case sky, water, grass, road
        /// The word captions use for it.
        public var name: String { ["sky", "water", "grass", "road"][rawValue] }
    }

    public struct ObjectClass {
        public let vocIndex: Int          // 0-based VOC class index
        public let name: String
        public let home: Background       // where it is usually seen
    }

    /// aeroplane and bird in the sky, boat on water, cow on grass, car on the road.
    public static let classes: [ObjectClass] = [
        ObjectClass(vocIndex: 0, name: "aeroplane", home: .sky),
        ObjectClass(vocIndex: 2, name: "bird", home: .sky),
        ObjectClass(vocIndex: 3, name: "boat", home: .water),
        ObjectClass(vocIndex: 6, name: "car", home: .road),
        ObjectClass(vocIndex: 9, name: "cow", home: .grass),
    ]

    /// Probability that an object is placed on its home background.
    public var homeProbability: Float = 0.9
    public var sizes: [(width: Int, height: Int)] = [(224, 160), (192, 192), (240, 176), (208, 144)]

    public init() {}

    /// One drawn scene: RGB pixels, a label map (0 background, VOC index + 1 for objects,
    /// 255 on a thin ignore band around each object, as in VOC), and the 20-entry label vector.
    public struct Scene {
        public let width: Int
        public let height: Int
        public var rgb: [UInt8]
        public var labels: [UInt8]
        public var classVector: [Float]
        /// What was drawn: the background (nil on a plain grey canvas) and the object classes in
        /// drawing order (a class may repeat).
        public var background: Background?
        public var objects: [ObjectClass] = []
    }

    public func draw(using rng: inout SeededGenerator) -> Scene {
        let size = sizes[Int(rng.next() % UInt64(sizes.count))]
        let (W, H) = size
        let background = Background.allCases[Int(rng.next() % 4)]
        var scene = Scene(width: W, height: H, rgb: [UInt8](repeating: 0, count: W * H * 3),
                          labels: [UInt8](repeating: 0, count: W * H), classVector: [Float](repeating: 0, count: 20),
                          background: background)
        paintBackground(background, into: &scene, rng: &rng)

        let home = Self.classes.filter { $0.home == background }
        let away = Self.classes.filter { $0.home != background }
        let objectCount = 1 + Int(rng.next() % 3)
        for _ in 0..<objectCount {
            let pool = (rng.nextUniform() < homeProbability && !home.isEmpty) ? home : away
            let cls = pool[Int(rng.next() % UInt64(pool.count))]
            let scale = Float(min(W, H)) * (0.22 + 0.22 * rng.nextUniform())
            let cx = Float(W) * (0.2 + 0.6 * rng.nextUniform())
            let cy = Float(H) * (0.2 + 0.6 * rng.nextUniform())
            paintObject(cls, cx: cx, cy: cy, scale: scale, into: &scene, rng: &rng)
            scene.classVector[cls.vocIndex] = 1
            scene.objects.append(cls)
        }
        return scene
    }

    /// The ImageNet mean colour: what a masked-out pixel becomes in the SemPLeS stages (the
    /// normalised image times a zero mask, spec §2.2), so object-only pictures on it look like
    /// the foreground images CLIP is shown there.
    public static let maskGrey: (Float, Float, Float) = (124, 116, 104)

    /// One object of a random class on the mask grey, for CLIP's captioned corpus.
    public func drawObjectAlone(using rng: inout SeededGenerator) -> Scene {
        let (W, H) = sizes[Int(rng.next() % UInt64(sizes.count))]
        var scene = Scene(width: W, height: H, rgb: [UInt8](repeating: 0, count: W * H * 3),
                          labels: [UInt8](repeating: 0, count: W * H), classVector: [Float](repeating: 0, count: 20),
                          background: nil)
        fillGrey(&scene)
        let cls = Self.classes[Int(rng.next() % UInt64(Self.classes.count))]
        let scale = Float(min(W, H)) * (0.3 + 0.25 * rng.nextUniform())
        paintObject(cls, cx: Float(W) * (0.3 + 0.4 * rng.nextUniform()), cy: Float(H) * (0.3 + 0.4 * rng.nextUniform()),
                    scale: scale, into: &scene, rng: &rng)
        scene.classVector[cls.vocIndex] = 1
        scene.objects = [cls]
        return scene
    }

    /// A background alone, with zero to two object-shaped holes in the mask grey (as the
    /// background images of the SemPLeS stages have where the objects were cut out).
    public func drawBackgroundAlone(using rng: inout SeededGenerator) -> Scene {
        let (W, H) = sizes[Int(rng.next() % UInt64(sizes.count))]
        let background = Background.allCases[Int(rng.next() % 4)]
        var scene = Scene(width: W, height: H, rgb: [UInt8](repeating: 0, count: W * H * 3),
                          labels: [UInt8](repeating: 0, count: W * H), classVector: [Float](repeating: 0, count: 20),
                          background: background)
        paintBackground(background, into: &scene, rng: &rng)
        for _ in 0..<Int(rng.next() % 3) {
            let cls = Self.classes[Int(rng.next() % UInt64(Self.classes.count))]
            let scale = Float(min(W, H)) * (0.22 + 0.22 * rng.nextUniform())
            paintObject(cls, cx: Float(W) * (0.2 + 0.6 * rng.nextUniform()), cy: Float(H) * (0.2 + 0.6 * rng.nextUniform()),
                        scale: scale, into: &scene, rng: &rng, colour: Self.maskGrey)
        }
        scene.labels = [UInt8](repeating: 0, count: W * H)
        return scene
    }

    /// The mask grey alone, with faint noise: what an all-masked image looks like.
    public func drawBlank(using rng: inout SeededGenerator) -> Scene {
        let (W, H) = sizes[Int(rng.next() % UInt64(sizes.count))]
        var scene = Scene(width: W, height: H, rgb: [UInt8](repeating: 0, count: W * H * 3),
                          labels: [UInt8](repeating: 0, count: W * H), classVector: [Float](repeating: 0, count: 20),
                          background: nil)
        let g = Self.maskGrey
        let shift = 40 * (rng.nextUniform() - 0.5)
        for i in 0..<(W * H) {
            let n = 8 * (rng.nextUniform() - 0.5) + shift
            scene.rgb[i * 3] = clampByte(g.0 + n)
            scene.rgb[i * 3 + 1] = clampByte(g.1 + n)
            scene.rgb[i * 3 + 2] = clampByte(g.2 + n)
        }
        return scene
    }

    func fillGrey(_ s: inout Scene) {
        let g = Self.maskGrey
        for i in 0..<(s.width * s.height) {
            s.rgb[i * 3] = clampByte(g.0)
            s.rgb[i * 3 + 1] = clampByte(g.1)
            s.rgb[i * 3 + 2] = clampByte(g.2)
        }
    }

    // MARK: backgrounds

    func paintBackground(_ kind: Background, into s: inout Scene, rng: inout SeededGenerator) {
        let phase = rng.nextUniform() * 6.28
        for y in 0..<s.height {
            for x in 0..<s.width {
                let fx = Float(x), fy = Float(y), v = fy / Float(s.height)
                let n = rng.nextUniform() - 0.5
                var c: (Float, Float, Float)
                switch kind {
                case .sky:
                    c = (110 + 60 * v, 160 + 40 * v, 235 - 10 * v)
                    let cloud = sin(fx * 0.05 + phase) * sin(fy * 0.08 + phase * 0.5)
                    if cloud > 0.6 { c = (c.0 + 60, c.1 + 45, c.2 + 15) }
                case .water:
                    let wave = sin(fx * 0.15 + 2 * sin(fy * 0.21 + phase))
                    c = (30 + 15 * wave, 80 + 25 * wave, 150 + 30 * wave)
                case .grass:
                    let blade = sin(fx * 0.9 + phase) * sin(fy * 0.37)
                    c = (50 + 25 * blade, 130 + 35 * blade, 40 + 10 * blade)
                case .road:
                    c = (95, 95, 100)
                    if abs(fy - Float(s.height) * 0.55) < 3 && Int(fx / 18) % 2 == 0 { c = (230, 220, 120) }
                }
                let i = (y * s.width + x) * 3
                s.rgb[i] = clampByte(c.0 + 24 * n)
                s.rgb[i + 1] = clampByte(c.1 + 24 * n)
                s.rgb[i + 2] = clampByte(c.2 + 24 * n)
            }
        }
    }

    // MARK: objects

    /// Shape membership in object coordinates (u, v in about [-1, 1]) and the colour at that point.
    func shape(_ cls: ObjectClass, u: Float, v: Float) -> (Float, Float, Float)? {
        switch cls.name {
        case "aeroplane":
            let fuselage = abs(v) < 0.14 && abs(u) < 0.95
            let wings = abs(u + 0.05) < 0.16 && abs(v) < 0.8 - abs(u) * 0.5
            let tail = u < -0.7 && u > -0.95 && v < 0 && v > -0.4
            return fuselage || wings || tail ? (200, 200, 210) : nil
        case "bird":
            let body = (u * u) / 0.5 + (v * v) / 0.18 < 1
            let head = (u - 0.65) * (u - 0.65) + (v + 0.2) * (v + 0.2) < 0.07
            let beak = u > 0.85 && u < 1.05 && abs(v + 0.2) < 0.06
            if beak { return (240, 140, 20) }
            return body || head ? (235, 205, 40) : nil
        case "boat":
            let hull = v > 0.2 && v < 0.55 && abs(u) < 0.9 - (v - 0.2) * 0.8
            let mast = abs(u) < 0.04 && v > -0.9 && v <= 0.2
            let sail = u > 0.04 && v > -0.85 && v <= 0.15 && u < (v + 0.85) * 0.7
            if hull { return (120, 70, 35) }
            if sail { return (245, 245, 240) }
            return mast ? (60, 40, 20) : nil
        case "car":
            let body = abs(u) < 0.9 && v > -0.1 && v < 0.35
            let cabin = abs(u) < 0.45 && v > -0.45 && v <= -0.1
            let wheel = ((u - 0.5) * (u - 0.5) + (v - 0.4) * (v - 0.4) < 0.04) || ((u + 0.5) * (u + 0.5) + (v - 0.4) * (v - 0.4) < 0.04)
            if wheel { return (20, 20, 20) }
            if cabin { return (150, 200, 230) }
            return body ? (210, 30, 35) : nil
        default: // cow
            let body = (u * u) / 0.6 + (v * v) / 0.2 < 1
            let head = (u - 0.85) * (u - 0.85) / 0.05 + (v + 0.15) * (v + 0.15) / 0.05 < 1
            let legs = v > 0.3 && v < 0.8 && (abs(u - 0.45) < 0.07 || abs(u + 0.45) < 0.07)
            guard body || head || legs else { return nil }
            let spot = sin(u * 9) * sin(v * 11) > 0.35
            return spot ? (25, 25, 25) : (245, 245, 245)
        }
    }

    /// Paints one object (its own colours, or `colour` for all of it) and its label.
    func paintObject(_ cls: ObjectClass, cx: Float, cy: Float, scale: Float,
                     into s: inout Scene, rng: inout SeededGenerator, colour: (Float, Float, Float)? = nil) {
        let flip: Float = rng.nextUniform() < 0.5 ? -1 : 1
        let half = scale * 0.55
        let band: Float = 2 / half   // ignore band, about 2 pixels wide
        let x0 = max(0, Int(cx - scale * 1.1)), x1 = min(s.width - 1, Int(cx + scale * 1.1))
        let y0 = max(0, Int(cy - scale * 1.1)), y1 = min(s.height - 1, Int(cy + scale * 1.1))
        guard x0 <= x1, y0 <= y1 else { return }
        let label = UInt8(cls.vocIndex + 1)
        for y in y0...y1 {
            for x in x0...x1 {
                let u = flip * (Float(x) - cx) / half, v = (Float(y) - cy) / half
                let i = y * s.width + x
                if let painted = shape(cls, u: u, v: v) {
                    let c = colour ?? painted
                    let shade: Float = colour == nil ? 0.85 + 0.15 * rng.nextUniform() : 1
                    s.rgb[i * 3] = clampByte(c.0 * shade)
                    s.rgb[i * 3 + 1] = clampByte(c.1 * shade)
                    s.rgb[i * 3 + 2] = clampByte(c.2 * shade)
                    s.labels[i] = label
                } else if s.labels[i] == 0 {
                    // Pixels just outside the shape are ambiguous, as on VOC object boundaries.
                    let near = shape(cls, u: u + band, v: v) != nil || shape(cls, u: u - band, v: v) != nil
                        || shape(cls, u: u, v: v + band) != nil || shape(cls, u: u, v: v - band) != nil
                    if near { s.labels[i] = 255 }
                }
            }
        }
    }
}

@inline(__always) func clampByte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }
