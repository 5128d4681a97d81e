// geometry_clone.cpp: a leak through a C++ method in a namespace, geometry::Polygon::clone.
//
// A correct tool demangles the allocating frame and reports one loss record:
//   definite, 72 bytes in 1 block, function geometry::Polygon::clone() const, at the
//   line marked FP:clone (geometry_clone.cpp:34), via operator new, called from main.
// No error. Exit status 0.
//
// valgrind 3.19 memcheck: "72 bytes in 1 blocks are definitely lost ... by 0x...:
// geometry::Polygon::clone() const (geometry_clone.cpp:34) by main". The original
// polygon lives on main's stack. Natively: prints "sides 6", exits 0.
#include <cstdio>

namespace geometry {

class Polygon {
public:
    explicit Polygon(int sides) : sides_(sides)
    {
        for (int i = 0; i < 8; i++)
            coords_[i] = i * 0.5;
    }
    Polygon *clone() const;
    int sides() const { return sides_; }

private:
    int sides_;
    double coords_[8];
};

static_assert(sizeof(Polygon) == 72, "Polygon is 72 bytes");

Polygon *Polygon::clone() const
{
    return new Polygon(*this); // FP:clone
}

} // namespace geometry

__attribute__((noinline)) static int count_sides_of_copy(const geometry::Polygon &p)
{
    // The copy is never deleted: the pointer dies with this frame.
    geometry::Polygon *copy = p.clone();
    return copy->sides();
}

int main()
{
    geometry::Polygon hexagon(6);
    std::printf("sides %d\n", count_sides_of_copy(hexagon));
    return 0;
}
